"""Collector hot path: parse + aggregate OKX ``trades`` frames built from a real tape, one core.

Prints our figure beside a plain ``json.loads`` + Python-loop baseline in the same run (CPU time of
this process, best of three, so other work on the machine disturbs it less).

    .venv/bin/python benchmarks/bench_collector.py [--trades 2000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.domain import DEFAULT_TIMEFRAMES  # noqa: E402
from data.engine import CandleEngine  # noqa: E402
from data.okx.frames import decode_public  # noqa: E402
from data.replay.market import Feed  # noqa: E402
from data.replay.tape import read_tape  # noqa: E402

TAPE = ROOT / "data" / "samples" / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz"
SYMBOL = "BTC-USDT"


def build_frames(total: int) -> tuple[list[bytes], int]:
    """OKX pushes as the replay sends them in real time: one push per (time, side) group."""
    feed = Feed(SYMBOL, read_tape(TAPE), loop=True)
    frames, index = [], 0
    while index < total:
        end = feed.group_end(index, index + 100, 100, same_ts_side=True)
        frames.append(feed.push(index, end).encode())
        index = end
    return frames, index


def baseline(frames: list[bytes]) -> int:
    """json.loads + a plain loop into dict-based 1m bars (the CEO's reference figure)."""
    bars: dict[tuple[str, int], list[float]] = {}
    n = 0
    for raw in frames:
        msg = json.loads(raw)
        symbol = msg["arg"]["instId"]
        for d in msg["data"]:
            ts = int(d["ts"])
            px = float(d["px"])
            sz = float(d["sz"])
            key = (symbol, ts - ts % 60_000)
            bar = bars.get(key)
            if bar is None:
                bars[key] = [px, px, px, px, sz, px * sz, sz if d["side"] == "buy" else 0.0, 1]
            else:
                if px > bar[1]:
                    bar[1] = px
                if px < bar[2]:
                    bar[2] = px
                bar[3] = px
                bar[4] += sz
                bar[5] += px * sz
                if d["side"] == "buy":
                    bar[6] += sz
                bar[7] += 1
            n += 1
    return n


def ours(frames: list[bytes]) -> int:
    """Typed msgspec decode + the candle engine (1m per trade, 5m..1d rolled up from 1m)."""
    engine = CandleEngine([SYMBOL], DEFAULT_TIMEFRAMES)
    on_trades = engine.on_trades
    n = 0
    for raw in frames:
        frame = decode_public(raw)
        data = frame.data
        on_trades(frame.arg.instId, data, 0)  # type: ignore[union-attr,arg-type]
        n += len(data)  # type: ignore[arg-type]
        if engine.has_output:
            engine.drain()
    return n


def timed(fn, frames: list[bytes], repeat: int = 3) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.process_time()
        count = fn(frames)
        best = min(best, time.process_time() - start)
    return best, count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=2_000_000)
    args = parser.parse_args()
    frames, total = build_frames(args.trades)
    print(f"{total:,} real BTCUSDT trades (tape looped) in {len(frames):,} OKX pushes "
          f"({total / len(frames):.2f} trades/push)")
    for name, fn in (("json.loads + python loop (baseline)", baseline), ("msgspec + CandleEngine (ours)", ours)):
        seconds, count = timed(fn, frames)
        print(f"  {name:40s} {count / seconds / 1e6:6.2f} M trades/s  ({seconds * 1e9 / count:5.0f} ns/trade)")


if __name__ == "__main__":
    main()
