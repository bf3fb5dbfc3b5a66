"""Order book updates applied per second (issue 14.2's goal: >= 200k updates/s per core), next to references.

Input: the 400 + 400 real Binance BTCUSDT depth events in tests/fixtures (spot depth@100ms, USDⓈ-M depth@0ms;
about 50k price-level updates), pre-decoded, applied again and again from an empty book. An "update" is one
price level set or removed. Median of 5 runs each.

* ours: ``data.books.DepthSync`` (sequence check) + ``Book`` (levels, best bid/ask kept after every event)
* reference, plain dicts: set/pop of the levels with no sequence check and no best prices (the floor of a
  Python dict book)
* reference, sortedcontainers ``SortedDict`` per side with the best price read after every event (the usual
  sorted-book choice)

Second table, the book-walk fill cost (issue 14.4's goal: < 20 µs): the USDⓈ-M book after each of those events
(the states with at least 10 levels a side), one market order on each state in turn, sized to walk 1, 3 and 10
ask levels (buy) and bid levels (sell, alternating so the position stays near flat). Per order:
``submit_market`` + ``PaperBroker.on_book`` (the walk, then one fill at its average price with the Decimal fee,
margin check and accounting). Reference: the same walk in plain floats with no accounting (the floor).

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

from bot_manager.arbitrage import TopView  # noqa: E402
from bot_manager.broker import FeeModel, PaperBroker  # noqa: E402
from config.domain import Side  # noqa: E402
from data.books import DepthEvent, DepthSync, book_top  # noqa: E402

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
    walk_costs(load("binance_usdm_btcusdt_depth_frames_2024-08-08T2354.jsonl.gz"))


def float_walk(book: TopView, buy: bool, quantity: float) -> tuple[float, float]:
    """The floor: walk the levels in floats, no rounding, no fees, no accounting. Returns (filled, notional)."""
    filled = notional = 0.0
    for price, size in (book.iter_asks() if buy else book.iter_bids()):
        take = min(size, quantity - filled)
        filled += take
        notional += take * price
        if filled >= quantity:
            break
    return filled, notional


def walk_costs(stream: list[DepthEvent]) -> None:
    """Each order walks the book as it stood after the next captured event (the real sequence of book states, so
    levels change between orders as they do live), sized to end halfway into the ``levels``-th level."""
    sync = DepthSync(usdm=True)
    sync.snapshot(stream[0].first_id, [], [])
    states = []  # each state frozen as the bus carries it, read through the arbitrage bot's BookView
    for i, event in enumerate(stream):
        sync.on_event(event)
        top = book_top("binance", "BTC-USDT-SWAP", i, sync.book, 20)
        if len(top.bids) >= 10 and len(top.asks) >= 10:
            states.append(TopView(top))
    print()
    print(f"book-walk fill cost per market order, median of 5 runs of {len(states)} orders, each on the next of the "
          f"{len(states)} successive real Binance USDⓈ-M BTCUSDT book states with 10 levels a side or more")
    print(f"{'levels walked':<16}{'mean BTC':>14}{'ours µs':>10}{'float walk µs':>15}{'ratio':>8}")
    for levels in (1, 3, 10):
        sizes = []
        for i, state in enumerate(states):
            side = state.top.bids if i % 2 else state.top.asks  # buy walks the asks, sell the bids
            sizes.append(round(sum(q for _, q in side[:levels - 1]) + side[levels - 1][1] / 2, 3) or 0.001)
        n = len(states)
        ours_t, ref_t = [], []
        for _ in range(5):
            broker = PaperBroker(10**10, fees=FeeModel(), allow_short=True, lot_size="0.001", price_tick="0.1")
            t0 = time.perf_counter()
            for i in range(n):
                broker.submit_market(str(i), Side.SELL if i % 2 else Side.BUY, sizes[i], at_ms=i)
                fills = broker.on_book(i, states[i])
            ours_t.append((time.perf_counter() - t0) / n)
            assert round(sum(float(f.quantity) for f in fills), 3) == sizes[n - 1]  # the last order filled whole
            t0 = time.perf_counter()
            for i in range(n):
                float_walk(states[i], i % 2 == 0, sizes[i])
            ref_t.append((time.perf_counter() - t0) / n)
        ours_us, ref_us = statistics.median(ours_t) * 1e6, statistics.median(ref_t) * 1e6
        print(f"{levels:<16}{statistics.mean(sizes):>14.3f}{ours_us:>10.1f}{ref_us:>15.2f}{ours_us / ref_us:>8.1f}")


if __name__ == "__main__":
    main()
