"""Funding, open interest and liquidations as strategy inputs, live and in a backtest, on PostgreSQL (issue 14.3).

The real bundled OKX BTC-USDT-SWAP 1m candles of 2026-01-01 .. 03 and the real funding settlements of those days
(data/samples/README.md) are stored as the collector stores them (funding-rate reports); a running
``funding_contrarian`` bot is fed the candles one by one through the bot manager, and a backtest over the stored
candles must make the same fills. The open interest and liquidations stored beside them are made up from the
candles (the bundle has no recording of either); they serve to check that a live window and a backtest give
every bar the same four input values."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
from sqlalchemy import select

from backtesting.engine import run_bars
from backtesting.runner import compute_signals, load_data
from backtesting.spec import BacktestSpec
from bot_manager.config import parse_bot_config
from bot_manager.manager import BotManager
from bot_manager.market_inputs import attach_stored_inputs, stored_history
from bot_manager.service import BotService
from config.domain import Candle, FundingRate, Liquidation, OpenInterest, Side, Timeframe, datetime_to_ms
from database.engine import session_scope
from database.models import Fill
from database.repositories.derivatives import add_derivatives
from strategies.bars import Bars
from strategies.inputs import INPUTS, input_columns
from strategies.registry import create_strategy
from tests.bot_manager.builders import bot_config, sessions_for, store_candles

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
CANDLES = SAMPLES / "okx_BTC-USDT-SWAP_1m_2026-01-01_2026-01-16.csv.gz"
FUNDING = SAMPLES / "okx_BTC-USDT-SWAP_funding_rate_2026-01-01_2026-01-15.csv"
PERP = "BTC-USDT-SWAP"
DAY = 1440


def real_candles(n: int) -> list[Candle]:
    with gzip.open(CANDLES, "rt", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [Candle("okx", PERP, Timeframe.M1, int(r["ts_ms"]), float(r["open"]), float(r["high"]), float(r["low"]),
                   float(r["close"]), float(r["volume"])) for r in rows]


def stored_market_state(candles: list[Candle]) -> list[FundingRate | OpenInterest | Liquidation]:
    with FUNDING.open(newline="") as f:
        settlements = [(int(r["ts_ms"]), float(r["funding_rate"])) for r in csv.DictReader(f)]
    out: list[FundingRate | OpenInterest | Liquidation] = []
    for ts, rate in settlements:  # as the collector stores them: reports of each period, the last one settles
        out += [FundingRate("okx", PERP, PERP, ts - 3_600_000, rate * 0.5, ts), FundingRate("okx", PERP, PERP,
                                                                                          ts - 60_000, rate, ts)]
    for i, c in enumerate(candles):  # made up (see the module docstring)
        if i % 5 == 0:
            out.append(OpenInterest("okx", PERP, PERP, c.open_time_ms + 30_000, 1_000.0 + c.volume))
        if i % 3 == 0:
            side = Side.SELL if c.close < c.open else Side.BUY
            out.append(Liquidation("okx", PERP, PERP, c.open_time_ms + 7_000, side, c.close, c.volume / 1_000))
    return out


def test_a_live_funding_bot_and_a_backtest_give_each_bar_the_same_inputs_and_make_the_same_fills(
        pg_clean: str) -> None:
    candles = real_candles(DAY + DAY + DAY // 2)  # Jan 1 history, then 36 h live (five settlements)
    sessions = sessions_for(pg_clean)
    with session_scope(sessions) as session:
        add_derivatives(session, stored_market_state(candles))
    store_candles(sessions, candles[:DAY])
    params = {"high": 0.00004, "low": -0.00002}
    config = bot_config(name="fader", symbol=PERP, strategy="funding_contrarian", params=params,
                        direction="long_short")
    BotService(sessions).create_bot(config, start=True)
    manager = BotManager(sessions)
    manager.start()
    live_inputs: dict[int, list[float]] = {}
    market = next(iter(manager.markets.values()))
    for k, candle in enumerate(candles[DAY:], DAY):
        store_candles(sessions, [candle])
        manager.on_candle(candle)
        # what the running bot's window carries for its last bar, on every 97th bar and each bar a settlement
        # closes (its strategy reads funding only; the manager's read of all four inputs for the window beside it)
        if k % 97 == 0 or (candle.open_time_ms + 60_000) % 28_800_000 == 0:
            bars = manager._window_bars(market)
            assert int(bars.open_time[-1]) == candle.open_time_ms and list(bars.extra) == ["funding_rate"]
            with session_scope(sessions) as session:
                every = attach_stored_inputs(session, "okx", PERP, 60_000, market.window.bars(), INPUTS)
            assert every.extra["funding_rate"].tobytes() == bars.extra["funding_rate"].tobytes()
            live_inputs[k] = [float(every.extra[name][-1]) for name in INPUTS]
    with session_scope(sessions) as session:
        live = [(f.side, Decimal(f.quantity), Decimal(f.price), Decimal(f.fee), datetime_to_ms(f.ts))
                for f in session.scalars(select(Fill).order_by(Fill.ts, Fill.id))]

    spec = BacktestSpec(bot=parse_bot_config(config), start_ms=candles[DAY].open_time_ms, path="bar")
    with session_scope(sessions) as session:
        prepared = load_data(spec, session)
        # every input of the whole series, read at once as a backtest reads it (backtesting.runner: the whole
        # stored history), equals what the live window had for those bars
        data = prepared.data
        series = input_columns(data.open_time, 60_000, stored_history(session, "okx", PERP, INPUTS), INPUTS)
        assert series["funding_rate"].tobytes() == data.extra["funding_rate"].tobytes()
        index = {int(t): i for i, t in enumerate(data.open_time)}
        backtest_inputs = {k: [float(series[name][index[candles[k].open_time_ms]]) for name in INPUTS]
                           for k in live_inputs}
        assert np.array_equal(np.array(list(live_inputs.values())), np.array(list(backtest_inputs.values())),
                              equal_nan=True)
        assert any(v[2] > 0 for v in live_inputs.values()) and any(v[3] > 0 for v in live_inputs.values())
        # and a window read from the middle of a day (the manager's seed) agrees too
        window = Bars.from_frame(data.frame().iloc[500:1900].drop(columns=["funding_rate"]))
        again = attach_stored_inputs(session, "okx", PERP, 60_000, window, INPUTS)
        for name in INPUTS:
            assert again.extra[name].tobytes() == series[name][500:1900].tobytes(), name
    strategy = create_strategy("funding_contrarian", params)
    run = run_bars(spec.bot, strategy, prepared.data, compute_signals(strategy, prepared.data),
                   trade_start=prepared.trade_start)
    backtest = [(str(f.side), Decimal(f.quantity), Decimal(f.price), Decimal(f.fee), f.ts_ms) for f in run.fills]
    assert len(live) >= 4  # the settlements stepping into a zone, traded both ways
    assert backtest == live


def test_the_signal_engine_attaches_inputs_skips_a_candle_it_cannot_read_and_isolates_without_a_source() -> None:
    from bot_manager.signal_engine import SignalEngine
    from strategies.inputs import MarketHistory

    candles = real_candles(DAY + DAY // 2)
    with FUNDING.open(newline="") as f:
        rows = [(int(r["ts_ms"]), float(r["funding_rate"])) for r in csv.DictReader(f)]
    history = MarketHistory(np.array([t for t, _ in rows], dtype=np.int64), np.array([r for _, r in rows]))
    params = {"high": 0.00004, "low": -0.00002}
    unreadable = {candles[DAY + 479].open_time_ms}  # the bar before the 08:00 settlement of Jan 2

    def source(key: object, bars: Bars, names: tuple[str, ...]) -> Bars | None:
        if int(bars.open_time[-1]) in unreadable:
            return None
        return bars.with_extra(input_columns(bars.open_time, 60_000, history, names))

    engine = SignalEngine(inputs=source)
    engine.add_instance("fader", create_strategy("funding_contrarian", params), "okx", PERP, "1m")
    blind = SignalEngine()
    blind.add_instance("blind", create_strategy("funding_contrarian", params), "okx", PERP, "1m")
    events = [e for c in candles for e in engine.on_candle(c)]
    assert [e for c in candles[:3] for e in blind.on_candle(c)] == []
    [status] = blind.statuses()
    assert status.state == "failed" and "reads funding_rate" in str(status.error)

    frame = Bars(np.array([c.open_time_ms for c in candles], dtype=np.int64),
                 *(np.array([getattr(c, f) for c in candles]) for f in ("open", "high", "low", "close", "volume"))
                 ).to_frame()
    full = frame.assign(**input_columns(frame["open_time"].to_numpy(), 60_000, history, ("funding_rate",)))
    codes = create_strategy("funding_contrarian", params).generate_signals(full)
    expected = [(int(full["open_time"][k]), int(codes[k])) for k in np.flatnonzero(codes)]
    got = [(e.candle_time_ms, 1 if e.signal_type.value == "BUY" else -1) for e in events]
    assert engine.inputs_unavailable == 1 and len(expected) >= 3
    assert got == [x for x in expected if x[0] not in unreadable]  # the unreadable bar's signal alone is missed
    assert any(x[0] in unreadable for x in expected)
