"""Run one backtest: load the candles, compute the signals, pick the engine, compute the metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy.orm import Session

from backtesting.data import CandleData, load_db_candles, read_csv_candles
from backtesting.engine import run_bars
from backtesting.funding import FundingSeries, read_funding_csv
from backtesting.metrics import compute_metrics
from backtesting.result import BacktestResult
from backtesting.spec import BacktestSpec
from backtesting.vectorised import fast_path_blocker, run_fast
from bot_manager.market_inputs import require_history, stored_history
from config.errors import ConfigurationError, StrategyError
from database.repositories.derivatives import funding_settlements
from strategies.base import BaseStrategy
from strategies.inputs import MarketHistory, input_columns
from strategies.registry import create_strategy

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
    """Candles cut to the period (warm-up included) and the first traded bar."""

    data: CandleData
    trade_start: int
    funding: FundingSeries | None = None


def load_data(spec: BacktestSpec, session: Session | None = None) -> Prepared:
    """The candles the spec names: its CSV file, or the database through ``session``."""
    if spec.data_file:
        data = read_csv_candles(spec.data_file)
        if spec.end_ms is not None:
            data = data.slice(0, data.index_at(spec.end_ms))
        start = 0 if spec.start_ms is None else data.index_at(spec.start_ms)
    else:
        if session is None:
            raise ConfigurationError("stored candles need a database session", source="backtest")
        bot = spec.bot
        warmup = spec.warmup_bars
        if warmup is None:
            warmup = make_strategy(spec).history + DAY_MS // bot.timeframe.ms
        data, start = load_db_candles(session, bot.exchange, bot.symbol, bot.timeframe, spec.start_ms,
                                      spec.end_ms, warmup)
    if start >= len(data):
        raise ConfigurationError(f"no candles to trade in the period (data {data.source or 'given'} has "
                                 f"{len(data)} rows before the start)", source="backtest")
    funding = _funding(spec, session)
    inputs = make_strategy(spec).inputs
    if inputs:
        data = data.with_extra(_inputs(spec, session, data, inputs))
    return Prepared(data, start, funding)


def _inputs(spec: BacktestSpec, session: Session | None, data: CandleData, names: tuple[str, ...]
            ) -> dict[str, np.ndarray]:
    """The market inputs the strategy reads, for every bar of ``data``: funding from the funding file when one
    is given, the rest (and funding otherwise) from the collector's stored market state."""
    bot = spec.bot
    market = f"{bot.exchange} {bot.symbol}"
    stored = [n for n in names if not (n == "funding_rate" and spec.funding_file)]
    history = MarketHistory()
    if stored:
        if session is None:
            raise ConfigurationError(f"strategy {spec.strategy!r} reads {', '.join(stored)}: a backtest of it needs "
                                     "the database (stored market state)", field="strategy")
        history = stored_history(session, bot.exchange, bot.symbol, stored)
    if spec.funding_file and "funding_rate" in names:
        settlements = read_funding_csv(spec.funding_file)
        history = replace(history, funding_times=settlements.time_ms, funding_rates=settlements.rate)
        market = f"{market} (funding from {spec.funding_file})"
    require_history(history, names, spec.strategy, market)
    return input_columns(data.open_time, bot.timeframe.ms, history, names)


def _funding(spec: BacktestSpec, session: Session | None) -> FundingSeries | None:
    """The settlements the run charges: a CSV file, or the collector's stored ``funding_rates``."""
    if spec.funding_file and spec.funding_db:
        raise ConfigurationError("give a funding file or the stored funding rates, not both", field="funding_db")
    if spec.funding_file:
        return read_funding_csv(spec.funding_file)
    if not spec.funding_db:
        return None
    if session is None:
        raise ConfigurationError("stored funding rates need a database session", field="funding_db")
    bot = spec.bot
    rows = funding_settlements(session, bot.exchange, bot.symbol)
    if not rows:
        raise ConfigurationError(f"no funding rates stored for {bot.exchange} {bot.symbol} (funding_rates is "
                                 "filled by the collector of a -SWAP symbol)", field="funding_db")
    return FundingSeries(np.array([t for t, _ in rows], dtype=np.int64), np.array([r for _, r in rows]),
                         f"funding_rates of {bot.exchange} {bot.symbol}")


def make_strategy(spec: BacktestSpec) -> BaseStrategy:
    return create_strategy(spec.strategy, spec.params)


def compute_signals(strategy: BaseStrategy, data: CandleData) -> np.ndarray:
    """``strategy.generate_signals`` on the whole history, failures as ``StrategyError``."""
    try:
        codes = strategy.generate_signals(data.frame())
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise StrategyError(f"strategy {strategy.name!r} failed computing signals over {len(data)} candles "
                            f"from {data.source or 'the given data'}: {type(exc).__name__}: {exc}") from exc
    codes = np.asarray(codes)
    if codes.shape != (len(data),):
        raise StrategyError(f"strategy {strategy.name!r} returned {codes.shape} signals for {len(data)} candles; "
                            "expected one per candle")
    if not np.isin(codes, (-1, 0, 1)).all():
        raise StrategyError(f"strategy {strategy.name!r} returned signal codes other than -1, 0, 1")
    return codes.astype(np.int8)


def run_backtest(spec: BacktestSpec, prepared: Prepared, *, signals: np.ndarray | None = None,
                 progress: Callable[[float], bool] | None = None) -> BacktestResult:
    """Backtest ``spec`` on ``prepared`` candles; ``signals`` may be passed when already computed."""
    strategy = make_strategy(spec)
    data, start = prepared.data, prepared.trade_start
    codes = compute_signals(strategy, data) if signals is None else signals
    blocker = fast_path_blocker(spec.bot, strategy)
    if spec.close_at_end:
        blocker = blocker or "closing the position at the end"
    if prepared.funding is not None:
        blocker = blocker or "funding settlements"
    if spec.path == "vectorised" and blocker:
        raise ConfigurationError(f"the vectorised path cannot run this backtest: {blocker}", field="path")
    fast = run_fast(spec.bot, data, codes, start) if spec.path != "bar" and blocker is None else None
    if fast is None and spec.path == "vectorised":
        raise ConfigurationError("the vectorised path cannot run this backtest: an entry falls below the "
                                 f"minimum order of {spec.bot.min_order_quote} and a later one would fit again",
                                 field="path")
    if fast is not None:
        trades, equity, position, events, halted, path = fast.trades, fast.equity, fast.position, {}, None, \
            "vectorised"
    else:
        run = run_bars(spec.bot, strategy, data, codes, trade_start=start, close_at_end=spec.close_at_end,
                       progress=progress, funding=prepared.funding)
        trades, equity, position, events, halted, path = run.trades, run.equity, run.position, run.events, \
            run.halted_reason, "bar"
    window = slice(start, None)
    traded = codes[window]
    metrics = compute_metrics(equity=equity[window], position=position[window], close=data.close[window],
                              trades=trades, initial_cash=float(spec.bot.starting_balance),
                              bar_ms=data.bar_ms)
    metrics["path"] = path
    if prepared.funding is not None and fast is None:
        metrics["funding_paid"] = run.funding_paid
    if halted:
        metrics["halted_reason"] = halted
    bars = np.flatnonzero(traded) + start
    return BacktestResult(trades, data.open_time[window], equity[window], position[window], bars,
                          codes[bars], metrics, path, events)
