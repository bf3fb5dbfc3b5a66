"""Order book updates applied per second (issue 14.2's goal: >= 200k updates/s per core), next to references.

Input: the 400 + 400 real Binance BTCUSDT depth events in tests/fixtures (spot depth@100ms, USDⓈ-M depth@0ms;
about 50k price-level updates), pre-decoded, applied again and again from an empty book. An "update" is one
price level set or removed. Median of 5 runs each.

* ours: ``data.books.DepthSync`` (sequence check) + ``Book`` (levels, best bid/ask kept after every event)
* reference, plain dicts: set/pop of the levels with no sequence check and no best prices (the floor of a
  Python dict book)
* reference, sortedcontainers ``SortedDict`` per side with the best price read after every event (the usual
  sorted-book choice)

Run: ``.venv/bin/python benchmarks/bench_books.py``
"""

from __future__ import annotations

import gzip
import json
import statistics
import sys
import time
from pathlib import Path

from sortedcontainers import SortedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from data.books import DepthEvent, DepthSync  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
PASSES = 20


def load(name: str) -> list[DepthEvent]:
    with gzip.open(FIXTURES / name, "rt") as f:
        return [DepthEvent.from_binance(json.loads(line)["data"]) for line in f if line.strip()]


def ours(stream: list[DepthEvent], usdm: bool) -> None:
    for _ in range(PASSES):
        sync = DepthSync(usdm=usdm)
        first = stream[0]
        sync.snapshot(first.first_id if usdm else first.first_id - 1, [], [])
        on_event = sync.on_event
        for event in stream:
            on_event(event)
        assert sync.gaps == 0


def apply_levels(bids: dict[float, float], asks: dict[float, float], event: DepthEvent) -> None:
    for side, levels in ((bids, event.bids), (asks, event.asks)):
        for p, q in levels:
            price, size = float(p), float(q)
            if size == 0.0:
                side.pop(price, None)
            else:
                side[price] = size


def plain(stream: list[DepthEvent], usdm: bool) -> None:
    for _ in range(PASSES):
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        for event in stream:
            apply_levels(bids, asks, event)


def sorted_dict(stream: list[DepthEvent], usdm: bool) -> None:
    for _ in range(PASSES):
        bids, asks = SortedDict(), SortedDict()
        for event in stream:
            apply_levels(bids, asks, event)
            _ = (bids.peekitem(-1)[0] if bids else None, asks.peekitem(0)[0] if asks else None)


def main() -> None:
    print("order book updates per second, one core, median of 5 (real Binance BTCUSDT depth events)")
    print(f"{'stream':<22}{'engine':<42}{'updates/s':>12}{'ratio':>8}")
    for name, usdm in (("binance_spot_btcusdt_depth_frames_2024-08-08T2354.jsonl.gz", False),
                       ("binance_usdm_btcusdt_depth_frames_2024-08-08T2354.jsonl.gz", True)):
        stream = load(name)
        updates = sum(len(e.bids) + len(e.asks) for e in stream) * PASSES
        rates = {}
        for label, fn in (("ours: DepthSync + Book (best after each)", ours),
                          ("plain dicts, no sequence, no best", plain),
                          ("sortedcontainers SortedDict + best", sorted_dict)):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                fn(stream, usdm)
                times.append(time.perf_counter() - t0)
            rates[label] = updates / statistics.median(times)
        base = rates["ours: DepthSync + Book (best after each)"]
        for label, rate in rates.items():
            print(f"{'usdm' if usdm else 'spot':<22}{label:<42}{rate / 1e3:>10.0f} k{base / rate:>8.2f}")
        print(f"{'':<22}({updates // PASSES} level updates in {len(stream)} events, x{PASSES})")


if __name__ == "__main__":
    main()
