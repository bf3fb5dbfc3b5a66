"""Collector hot path: parse + aggregate OKX ``trades`` frames built from a real tape, one core.

Two frame shapes: the replay's real-time pushes (one push per run of trades with the same time and
side, as OKX groups them) and one trade per push (OKX's most common frame on a quiet market). Each
engine runs the same frames; the figure is the median of ``--repeat`` runs of CPU time of this
process, the same way for every engine (the engines take turns in each round).
Rows: project | strongest reference | ratio.

* ours: ``decode_public`` (typed msgspec decode, protocol check: every field the protocol's string,
  each ``instId`` the push's) + ``CandleEngine`` (dedupe by trade id, 1m per trade, 3m..1d rolled up).
* strongest reference: a typed msgspec decode (same struct shape, no protocol check) + a plain dict
  1m aggregator (no dedupe, no other timeframes): the least work that still yields 1m candles.
* weak reference: ``json.loads`` + the same plain loop.

``--peak-trades N`` also ingests N trades (frames built lazily, so the frames themselves do not
count) in a fresh process for ours and for the reference and prints the peak RSS of each.

    .venv/bin/python benchmarks/bench_collector.py [--trades 1000000] [--repeat 5] [--peak-trades 5000000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.domain import DEFAULT_TIMEFRAMES  # noqa: E402
from data.engine import CandleEngine  # noqa: E402
from data.okx.frames import decode_public  # noqa: E402
from data.replay.market import Feed  # noqa: E402
from data.replay.tape import read_tape  # noqa: E402

TAPE = ROOT / "data" / "samples" / "tape_BTC-USDT_binance_spot_2024-08-08T2354.csv.gz"
SYMBOL = "BTC-USDT"
SHAPES = {"grouped": (100, True), "single": (1, False)}  # name: (max trades per push, same time+side only)


def iter_frames(total: int, shape: str) -> Iterator[bytes]:
    """OKX pushes as the replay sends them, holding ``total`` trades (the tape looped)."""
    max_trades, same_ts_side = SHAPES[shape]
    feed = Feed(SYMBOL, read_tape(TAPE), loop=True)
    index = 0
    while index < total:
        end = feed.group_end(index, min(total, index + max_trades), max_trades, same_ts_side)
        yield feed.push(index, end).encode()
        index = end


# ---------------------------------------------------------------------------- the engines


def _plain_bar(bars: dict[tuple[str, int], list[float]], symbol: str, ts: int, px: float, sz: float,
               buy: bool) -> None:
    key = (symbol, ts - ts % 60_000)
    bar = bars.get(key)
    if bar is None:
        bars[key] = [px, px, px, px, sz, px * sz, sz if buy else 0.0, 1]
        return
    if px > bar[1]:
        bar[1] = px
    if px < bar[2]:
        bar[2] = px
    bar[3] = px
    bar[4] += sz
    bar[5] += px * sz
    if buy:
        bar[6] += sz
    bar[7] += 1


def json_loop(frames: Iterable[bytes]) -> int:
    """json.loads + a plain loop into dict-based 1m bars."""
    bars: dict[tuple[str, int], list[float]] = {}
    n = 0
    for raw in frames:
        msg = json.loads(raw)
        symbol = msg["arg"]["instId"]
        for d in msg["data"]:
            _plain_bar(bars, symbol, int(d["ts"]), float(d["px"]), float(d["sz"]), d["side"] == "buy")
            n += 1
    return n


class _RefTrade(msgspec.Struct, gc=False):
    tradeId: int
    px: float
    sz: float
    side: str
    ts: int


class _RefArg(msgspec.Struct, gc=False):
    channel: str
    instId: str


class _RefPush(msgspec.Struct, gc=False):
    arg: _RefArg
    data: list[_RefTrade]


_ref_decoder = msgspec.json.Decoder(_RefPush, strict=False)


def msgspec_loop(frames: Iterable[bytes]) -> int:
    """Typed msgspec decode (strings converted in C) + the plain 1m loop of ``_plain_bar``, inlined on
    purpose: the strongest reference pays no function call per trade."""
    bars: dict[tuple[str, int], list[float]] = {}
    decode = _ref_decoder.decode
    n = 0
    for raw in frames:
        push = decode(raw)
        symbol = push.arg.instId
        for d in push.data:
            ts, px, sz = d.ts, d.px, d.sz
            key = (symbol, ts - ts % 60_000)
            bar = bars.get(key)
            if bar is None:
                bars[key] = [px, px, px, px, sz, px * sz, sz if d.side == "buy" else 0.0, 1]
                continue
            if px > bar[1]:
                bar[1] = px
            if px < bar[2]:
                bar[2] = px
            bar[3] = px
            bar[4] += sz
            bar[5] += px * sz
            if d.side == "buy":
                bar[6] += sz
            bar[7] += 1
        n += len(push.data)
    return n


def ours(frames: Iterable[bytes]) -> int:
    """decode_public (typed decode + protocol check) + the candle engine, as the client calls them."""
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


ENGINES: dict[str, Callable[[Iterable[bytes]], int]] = {"ours": ours, "msgspec": msgspec_loop, "json": json_loop}


def median_cpu(frames: list[bytes], repeat: int) -> dict[str, tuple[float, int]]:
    """Median CPU seconds (and trade count) per engine; the engines take turns in every round, so a
    disturbance of the machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in ENGINES}
    counts: dict[str, int] = {}
    for _ in range(repeat):
        for name, fn in ENGINES.items():
            start = time.process_time()
            counts[name] = fn(frames)
            times[name].append(time.process_time() - start)
    return {name: (statistics.median(times[name]), counts[name]) for name in ENGINES}


def peak_rss_child(engine: str, total: int, shape: str) -> None:
    """In a fresh process: peak RSS before and after ingesting ``total`` trades (frames built lazily)."""
    frames = iter_frames(total, shape)
    first = next(frames)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = ENGINES[engine](itertools.chain([first], frames))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "after_kib": after, "trades": count}))


def peak_rss(engine: str, total: int, shape: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, __file__, "--peak-child", engine, "--peak-trades", str(total),
                          "--peak-shape", shape], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--peak-trades", type=int, default=5_000_000, help="0: skip the peak-memory rows")
    parser.add_argument("--peak-shape", choices=sorted(SHAPES), default="grouped")
    parser.add_argument("--peak-child", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        peak_rss_child(args.peak_child, args.peak_trades, args.peak_shape)
        return

    print(f"collector ingest, real BTCUSDT trades (tape looped), CPU time of one core, median of {args.repeat}")
    print(f"{'frames':44s} {'ours':>14s} {'msgspec ref':>14s} {'ratio':>6s} {'json ref':>14s}")
    for shape in SHAPES:
        frames = list(iter_frames(args.trades, shape))
        rates = {}
        for name, (seconds, count) in median_cpu(frames, args.repeat).items():
            assert count == args.trades, (name, count)
            rates[name] = count / seconds / 1e6
        label = f"{shape}: {args.trades:,} trades in {len(frames):,} pushes ({args.trades / len(frames):.2f}/push)"
        print(f"{label:44s} {rates['ours']:8.2f} M/s   {rates['msgspec']:8.2f} M/s   "
              f"{rates['ours'] / rates['msgspec']:5.2f}  {rates['json']:8.2f} M/s")
        del frames

    if args.peak_trades:
        print(f"\npeak RSS ingesting {args.peak_trades:,} trades ({args.peak_shape} pushes, built lazily; "
              "fresh process each)")
        print(f"{'':44s} {'ours':>14s} {'msgspec ref':>14s} {'ratio':>6s}")
        got = {name: peak_rss(name, args.peak_trades, args.peak_shape) for name in ("ours", "msgspec")}
        for key, label in (("before_kib", "before ingest (interpreter, tape, modules)"),
                           ("after_kib", "peak after ingest")):
            a, b = got["ours"][key] / 1024, got["msgspec"][key] / 1024
            print(f"{label:44s} {a:9.0f} MiB   {b:9.0f} MiB   {a / b:5.2f}")


if __name__ == "__main__":
    main()
