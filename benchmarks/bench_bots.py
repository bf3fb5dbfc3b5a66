"""200 paper-trading bots over 20 symbols on 1m candles: the whole manager path vs its parts.

* **manager**: ``BotManager.on_candle`` for every symbol's candle of each market minute: broker, risk,
  strategy signal, orders, and ONE database transaction per symbol-candle storing every bot's
  state, equity snapshot, orders, fills, positions and signals (PostgreSQL by default).
* **reference, strategies alone**: the same 200 strategies evaluated on the same windows, nothing else.
* **reference, PaperBroker alone**: ``on_bar`` bar by bar as the backtester calls it (flat and in a
  position with stop/take-profit/trailing checks), next to a bare Python loop over the same arrays.

Candles: the real OKX BTC-USDT-SWAP 1m fixture, relabelled as 20 symbols (price-scaled per symbol).
Run: ``.venv/bin/python benchmarks/bench_bots.py [--minutes 240] [--sqlite]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bot_manager.broker import PaperBroker, Protection  # noqa: E402
from bot_manager.manager import BotManager  # noqa: E402
from bot_manager.service import BotService  # noqa: E402
from config.domain import Candle, Side  # noqa: E402
from database.engine import make_engine, make_session_factory, session_scope  # noqa: E402
from database.migrate import upgrade  # noqa: E402
from database.repositories.market import upsert_candles  # noqa: E402
from strategies.bars import ANCHOR_MS  # noqa: E402
from strategies.guard import safe_signal_at_end  # noqa: E402
from strategies.live import LiveWindow  # noqa: E402
from strategies.registry import create_strategy  # noqa: E402
from tests.bot_manager.builders import bot_config, load_candles  # noqa: E402

SYMBOLS = 20
BOTS_PER_SYMBOL = 10
WARMUP = 600
STRATEGIES = [
    ("sma_cross", {"fast": 5, "slow": 20}), ("sma_cross", {"fast": 10, "slow": 40}),
    ("ema_cross", {"fast": 5, "slow": 13}), ("ema_cross", {"fast": 12, "slow": 26}),
    ("rsi_reversion", {"period": 7, "lower": 35, "upper": 65}), ("rsi_reversion", {"period": 14}),
    ("macd_cross", {}), ("bollinger", {"period": 20, "std": 2.0}),
    ("donchian_breakout", {"period": 20}), ("bollinger", {"period": 20, "std": 1.5, "mode": "breakout"}),
]


def market_candles(minutes: int) -> dict[str, list[Candle]]:
    base = load_candles(WARMUP + minutes)
    return {f"S{i:02d}-USDT": [replace(c, symbol=f"S{i:02d}-USDT", open=c.open * (1 + i / 100),
                                       high=c.high * (1 + i / 100), low=c.low * (1 + i / 100),
                                       close=c.close * (1 + i / 100)) for c in base]
            for i in range(SYMBOLS)}


def database_url(use_sqlite: bool) -> tuple[str, object]:
    if use_sqlite:
        folder = tempfile.mkdtemp(prefix="bench_bots_")
        return f"sqlite:///{folder}/bench.db", None
    import psycopg2

    admin = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bench_bots_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
    return f"{admin.rsplit('/', 1)[0]}/{name}", drop


def bench_manager(url: str, candles: dict[str, list[Candle]], minutes: int) -> tuple[list[list[float]], float, int]:
    """Per market minute, the latency of each symbol's candle: ``BotManager.on_candle`` from the closed
    candle's arrival to every bot's fills, signal, orders and state committed (commit included)."""
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        for rows in candles.values():
            upsert_candles(session, rows[:WARMUP])
    service = BotService(sessions)
    for s, symbol in enumerate(candles):
        for b in range(BOTS_PER_SYMBOL):
            name, params = STRATEGIES[b]
            service.create_bot(bot_config(name=f"bot_{s:02d}_{b}", symbol=symbol, strategy=name, params=params,
                                          risk={"stop_loss_pct": 0.5, "take_profit_pct": 1.0}), start=True)
    manager = BotManager(sessions)
    manager.start()
    fills = 0
    latencies: list[list[float]] = []
    clock = time.perf_counter
    for minute in range(WARMUP, WARMUP + minutes):
        batch = [rows[minute] for rows in candles.values()]
        with session_scope(sessions) as session:  # the collector's write: before the candle is published
            upsert_candles(session, batch)
        row = []
        for candle in batch:
            started = clock()
            published = manager.on_candle(candle)
            row.append(clock() - started)
            fills += sum(1 for channel, _ in published if channel.startswith("fills."))
        latencies.append(row)
    engine.dispose()
    return latencies, psutil.Process().memory_info().rss / 2**20, fills


def bench_strategies_alone(candles: dict[str, list[Candle]], minutes: int) -> list[list[float]]:
    """The floor, timed the same way per symbol-candle: the window update and the 10 strategies' signals."""
    windows = {}
    strategies = {}
    for symbol, rows in candles.items():
        strategies[symbol] = [create_strategy(n, p) for n, p in STRATEGIES]
        window = LiveWindow(max(s.history for s in strategies[symbol]), ANCHOR_MS // 60_000)
        for c in rows[:WARMUP]:
            window.add(c.open_time_ms, (c.open, c.high, c.low, c.close, c.volume))
        windows[symbol] = window
    latencies: list[list[float]] = []
    clock = time.perf_counter
    for minute in range(WARMUP, WARMUP + minutes):
        row = []
        for symbol, rows in candles.items():
            started = clock()
            c = rows[minute]
            windows[symbol].add(c.open_time_ms, (c.open, c.high, c.low, c.close, c.volume))
            bars = windows[symbol].bars()
            for strategy in strategies[symbol]:
                safe_signal_at_end(strategy, bars)
            row.append(clock() - started)
        latencies.append(row)
    return latencies


def figures(latencies: list[list[float]]) -> tuple[float, float, float]:
    """(p50 per candle, p99 per candle, median work per market minute), in ms."""
    flat = np.array([x for row in latencies for x in row]) * 1000
    return (float(np.percentile(flat, 50)), float(np.percentile(flat, 99)),
            float(np.median([sum(row) for row in latencies])) * 1000)


def bench_broker(bars: int) -> None:
    rows = load_candles(4000)
    data = [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume) for c in rows]
    data = (data * (bars // len(data) + 1))[:bars]
    started = time.perf_counter()
    for _row in data:
        pass
    bare = time.perf_counter() - started
    flat = PaperBroker(Decimal(10_000))
    on_bar = flat.on_bar
    started = time.perf_counter()
    for t, o, h, l, c, v in data:  # noqa: E741
        on_bar(t, o, h, l, c, v)
    flat_s = time.perf_counter() - started
    held = PaperBroker(Decimal(10_000_000), protection=Protection(50, 100, 60))
    held.on_bar(0, 90_000, 90_000, 90_000, 90_000, 1)
    held.submit_market("entry", Side.BUY, Decimal("0.1"))
    on_bar = held.on_bar
    started = time.perf_counter()
    for t, o, h, l, c, v in data:  # noqa: E741
        on_bar(t, o, h, l, c, v)
    held_s = time.perf_counter() - started
    print(f"PaperBroker.on_bar, flat            {bars / flat_s:>12,.0f} bars/s   "
          f"(bare loop over the same tuples: {bars / bare:,.0f} bars/s)")
    print(f"PaperBroker.on_bar, in a position   {bars / held_s:>12,.0f} bars/s   "
          f"(stop-loss, take-profit and trailing stop checked every bar)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=120, help="market minutes to simulate per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (medians are printed)")
    parser.add_argument("--sqlite", action="store_true", help="use a SQLite file instead of PostgreSQL")
    args = parser.parse_args()
    candles = market_candles(args.minutes)
    bots = SYMBOLS * BOTS_PER_SYMBOL
    print(f"{bots} bots, {SYMBOLS} symbols ({BOTS_PER_SYMBOL} bots per symbol-candle), {args.minutes} one-minute "
          f"candles per symbol, {'SQLite' if args.sqlite else 'PostgreSQL'}, median of {args.runs} runs")
    ours, floor = [], []
    rss, fills = 0.0, 0
    for _ in range(args.runs):  # a fresh database per run; the reference interleaved with ours
        url, drop = database_url(args.sqlite)
        try:
            latencies, rss, fills = bench_manager(url, candles, args.minutes)
        finally:
            if drop is not None:
                drop()  # type: ignore[operator]
        ours.append(figures(latencies))
        floor.append(figures(bench_strategies_alone(candles, args.minutes)))
    project = np.median(np.array(ours), axis=0)
    reference = np.median(np.array(floor), axis=0)
    print("latency of one symbol's closed candle: on_candle() until its 10 bots' broker fills, risk checks, "
          "signals, orders and state are committed (the commit included, publishing not)")
    print(f"{'':32}{'project':>12}{'reference':>12}{'ratio':>8}   reference: the same 10 strategies "
          "on the same windows, nothing else")
    for label, k in (("p50 per candle, ms", 0), ("p99 per candle, ms", 1), ("work per market minute, ms", 2)):
        print(f"{label:32}{project[k]:>12.2f}{reference[k]:>12.2f}{project[k] / reference[k]:>8.1f}")
    print(f"{'per bot-candle, us (median)':32}{project[2] / bots * 1000:>12.1f}{reference[2] / bots * 1000:>12.1f}")
    print(f"fills per run: {fills}; peak RSS after the manager runs: {rss:.0f} MB")
    bench_broker(1_000_000)


if __name__ == "__main__":
    main()
