"""Strategy engine speed, next to plain references.

1. Live path, per built-in: closed candle message in -> signal published (decode, window update,
   evaluation on a 500-candle history window, publish on the in-process bus; no database), p50/p99.
   Reference: a plain pandas rolling-mean ``sma_cross`` recomputed on the last 500 candles.
2. 100 strategy instances on one 1m market: cost per candle, against the 60 s a 1m candle lasts.
3. Vectorised signals for 1M candles, per built-in. The 1M candles are made from the 4 000 real OKX
   1m candles in tests/fixtures by concatenating the series with its time-reversed mirror (so the
   price path stays continuous) and re-stamping open times one minute apart. References: a plain
   pandas rolling-mean ``sma_cross`` and one full-array TA-Lib ``sma_cross`` without day anchoring.

Run: ``.venv/bin/python benchmarks/bench_strategies.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import talib

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot_manager.signal_engine import SignalEngine, SignalEngineService, bars_from_candles  # noqa: E402
from config.domain import Candle, Timeframe  # noqa: E402
from data import messages  # noqa: E402
from data.bus import InProcessBus  # noqa: E402
from strategies.builtin import BUILTIN  # noqa: E402
from strategies.registry import create_strategy  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/candles_okx_BTC-USDT-SWAP_1m_2026-01-01_4000.csv.gz"
WINDOW = 500


def load() -> pd.DataFrame:
    frame = pd.read_csv(FIXTURE).rename(columns={"ts_ms": "open_time"})
    return frame[["open_time", "open", "high", "low", "close", "volume"]]


def candles_of(frame: pd.DataFrame) -> list[Candle]:
    return [Candle("okx", "BTC-USDT-SWAP", Timeframe.M1, int(r.open_time), r.open, r.high, r.low, r.close, r.volume)
            for r in frame.itertuples(index=False)]


def million(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    mirrored = frame.iloc[::-1].rename(columns={"open": "close", "close": "open"})[frame.columns]
    pair = pd.concat([frame, mirrored], ignore_index=True)
    big = pd.concat([pair] * (rows // len(pair) + 1), ignore_index=True).iloc[:rows].copy()
    big["open_time"] = int(frame["open_time"].iloc[0]) + 60_000 * np.arange(rows, dtype=np.int64)
    return big


def percentiles(samples: list[float]) -> str:
    a = np.array(samples) * 1e3
    return f"p50 {np.percentile(a, 50):7.3f} ms   p99 {np.percentile(a, 99):7.3f} ms   max {a.max():7.3f} ms"


async def live_latency(name: str, candles: list[Candle], measured: int) -> list[float]:
    core = SignalEngine()
    core.add_instance("bench", create_strategy(name), "okx", "BTC-USDT-SWAP", Timeframe.M1)
    core.seed("okx", "BTC-USDT-SWAP", Timeframe.M1, bars_from_candles(candles[:WINDOW]))
    service = SignalEngineService(core, None)
    bus = InProcessBus()
    subscription = await bus.subscribe("signals.*")
    samples = []
    for candle in candles[WINDOW: WINDOW + measured]:
        message = messages.candle_to_message(candle)
        start = time.perf_counter()
        await service.handle(bus, message)
        samples.append(time.perf_counter() - start)
    await subscription.close()
    return samples


def pandas_sma_cross_last(frame: pd.DataFrame) -> int:
    fast = frame["close"].rolling(10).mean()
    slow = frame["close"].rolling(30).mean()
    up = fast.iloc[-1] > slow.iloc[-1] and fast.iloc[-2] <= slow.iloc[-2]
    down = fast.iloc[-1] < slow.iloc[-1] and fast.iloc[-2] >= slow.iloc[-2]
    return 1 if up else -1 if down else 0


def pandas_sma_cross(frame: pd.DataFrame) -> np.ndarray:
    fast = frame["close"].rolling(10).mean()
    slow = frame["close"].rolling(30).mean()
    above, below = fast > slow, fast < slow
    up = above & (fast.shift() <= slow.shift())
    down = below & (fast.shift() >= slow.shift())
    return np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)


def talib_sma_cross(close: np.ndarray) -> np.ndarray:
    fast, slow = talib.SMA(close, 10), talib.SMA(close, 30)
    out = np.zeros(len(close), dtype=np.int8)
    out[1:][(fast[1:] > slow[1:]) & (fast[:-1] <= slow[:-1])] = 1
    out[1:][(fast[1:] < slow[1:]) & (fast[:-1] >= slow[:-1])] = -1
    return out


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer candles (a smoke run)")
    args = parser.parse_args()
    frame = load()
    candles = candles_of(frame)
    measured = 500 if args.quick else 3000

    plain = [cls for cls in BUILTIN if not cls.inputs]  # the ones that read candles only
    print(f"1. Live: closed candle in -> signal published ({measured} candles, {WINDOW}-candle history window; "
          f"{', '.join(c.name for c in BUILTIN if c.inputs) or 'none'} left out: it reads stored market inputs)")
    for cls in plain:
        print(f"   {cls.name:<18} {percentiles(asyncio.run(live_latency(cls.name, candles, measured)))}")
    ref = []
    for i in range(WINDOW, WINDOW + measured):
        window = frame.iloc[i - WINDOW: i + 1]
        start = time.perf_counter()
        pandas_sma_cross_last(window)
        ref.append(time.perf_counter() - start)
    print(f"   {'reference: pandas rolling sma_cross on the last 500 candles':<18}\n   {'':<18} {percentiles(ref)}")

    print("\n2. 100 instances on one 1m market")
    names = [cls.name for cls in plain]
    variants = [{"sma_cross": {"fast": 5 + k, "slow": 30 + 2 * k}, "ema_cross": {"fast": 5 + k, "slow": 26 + k},
                 "rsi_reversion": {"period": 7 + k % 14}, "macd_cross": {"fast": 8 + k % 5, "slow": 26 + k},
                 "bollinger": {"period": 10 + k, "mode": "breakout" if k % 2 else "reversion"},
                 "donchian_breakout": {"period": 10 + 2 * k}} for k in range(17)]
    core = SignalEngine()
    for n in range(100):
        name = names[n % 6]
        core.add_instance(f"i{n}", create_strategy(name, variants[n // 6][name]), "okx", "BTC-USDT-SWAP", "1m")
    ((_, rows),) = core.warmup_needed()
    core.seed("okx", "BTC-USDT-SWAP", Timeframe.M1, bars_from_candles(candles[:WINDOW]))
    feed = candles[WINDOW: WINDOW + (300 if args.quick else 1500)]
    start = time.perf_counter()
    emitted = sum(len(core.on_candle(c)) for c in feed)
    per_candle = (time.perf_counter() - start) / len(feed)
    print(f"   {per_candle * 1e3:.2f} ms per candle for 100 instances ({emitted} signals over {len(feed)} candles); "
          f"a 1m candle lasts 60 000 ms -> headroom x{60 / per_candle:,.0f}")

    rows = 200_000 if args.quick else 1_000_000
    big = million(frame, rows)
    print(f"\n3. Vectorised signals for {rows:,} candles (real 1m OKX candles, concatenated with their mirror)")
    for cls in plain:
        strategy = create_strategy(cls.name)
        seconds = best_of(lambda s=strategy: s.generate_signals(big))
        print(f"   {cls.name:<18} {seconds * 1e3:8.1f} ms   ({seconds / rows * 1e9:6.1f} ns/candle)")
    close = big["close"].to_numpy()
    pandas_ms = best_of(lambda: pandas_sma_cross(big)) * 1e3
    talib_ms = best_of(lambda: talib_sma_cross(close)) * 1e3
    print(f"   {'reference: pandas rolling-mean sma_cross':<44} {pandas_ms:8.1f} ms")
    print(f"   {'reference: one full-array TA-Lib sma_cross':<44} {talib_ms:8.1f} ms")
    ours, plain = create_strategy("sma_cross").generate_signals(big), pandas_sma_cross(big)
    print(f"   sma_cross vs the pandas reference: {int((ours != plain).sum())} of {rows:,} bars differ")


if __name__ == "__main__":
    main()
