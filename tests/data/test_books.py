"""Order books on the real captured Binance depth streams (tests/fixtures/README.md), pure: the book against a
plain dict-and-sort reference, Binance's update-id sequencing, and a dropped update detected and resynced."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from data.books import APPLIED, BUFFERED, GAP, STALE, Book, DepthEvent, DepthSync, OkxBookSync
from tests.data.builders import FIXTURES

SPOT_DEPTH = FIXTURES / "binance_spot_btcusdt_depth_frames_2024-08-08T2354.jsonl.gz"
USDM_DEPTH = FIXTURES / "binance_usdm_btcusdt_depth_frames_2024-08-08T2354.jsonl.gz"


def events(path: Path) -> list[DepthEvent]:
    with gzip.open(path, "rt") as f:
        return [DepthEvent.from_binance(json.loads(line)["data"]) for line in f if line.strip()]


class Reference:
    """The obvious book: apply every level, sort on every question."""

    def __init__(self) -> None:
        self.sides: tuple[dict[float, float], dict[float, float]] = ({}, {})

    def apply(self, event: DepthEvent) -> None:
        for side, levels in zip(self.sides, (event.bids, event.asks), strict=True):
            for price, size in levels:
                if float(size) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = float(size)

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        return sorted(self.sides[0].items(), reverse=True)[:n], sorted(self.sides[1].items())[:n]

    def snapshot(self) -> tuple[list[list[str]], list[list[str]]]:
        return ([[repr(p), repr(s)] for p, s in self.sides[0].items()],
                [[repr(p), repr(s)] for p, s in self.sides[1].items()])


def snapshot_id(first: DepthEvent, usdm: bool) -> int:
    """A snapshot id the first event follows (an empty snapshot taken just before the capture started)."""
    return first.first_id if usdm else first.first_id - 1


@pytest.mark.parametrize(("path", "usdm"), [(SPOT_DEPTH, False), (USDM_DEPTH, True)], ids=["spot", "usdm"])
def test_the_captured_stream_stays_in_sequence_and_the_book_equals_the_reference(path: Path, usdm: bool) -> None:
    stream = events(path)
    assert len(stream) == 400
    sync, ref = DepthSync(usdm=usdm), Reference()
    assert sync.on_event(stream[0]) == BUFFERED
    assert sync.snapshot(snapshot_id(stream[0], usdm), [], []) == 1
    ref.apply(stream[0])
    for event in stream[1:]:
        assert sync.on_event(event) == APPLIED
        ref.apply(event)
        bids, asks = ref.top(1)
        assert (sync.book.best_bid, sync.book.best_ask) == (bids[0][0] if bids else None, asks[0][0] if asks else None)
    assert sync.gaps == 0 and sync.last_id == stream[-1].last_id
    assert sync.book.top(20) == ref.top(20)
    assert sync.book.bids == ref.sides[0] and sync.book.asks == ref.sides[1]


@pytest.mark.parametrize(("path", "usdm"), [(SPOT_DEPTH, False), (USDM_DEPTH, True)], ids=["spot", "usdm"])
def test_a_dropped_update_is_detected_and_a_new_snapshot_resyncs_the_book(path: Path, usdm: bool) -> None:
    stream = events(path)
    sync, ref = DepthSync(usdm=usdm), Reference()
    sync.snapshot(snapshot_id(stream[0], usdm), [], [])
    dropped = 150
    for event in stream[:dropped]:
        assert sync.on_event(event) == APPLIED
        ref.apply(event)
    ref.apply(stream[dropped])  # the reference (the venue) has it; our stream lost it
    assert sync.on_event(stream[dropped + 1]) == GAP
    assert (sync.gaps, sync.last_id, sync.book.bids) == (1, None, {})
    # Events keep arriving while the snapshot is fetched; the snapshot is as of event dropped + 3.
    for event in stream[dropped + 1:dropped + 4]:
        ref.apply(event)
    for event in stream[dropped + 2:dropped + 6]:
        assert sync.on_event(event) == BUFFERED
    bids, asks = ref.snapshot()
    # spot: +4 and +5 (+2, +3 are in the snapshot); USDⓈ-M also applies +3 again, whose u equals the
    # snapshot's id (Binance: the first event has U <= lastUpdateId <= u; setting levels twice is harmless)
    assert sync.snapshot(stream[dropped + 3].last_id, bids, asks) == (3 if usdm else 2)
    assert sync.resyncs == 1
    for event in stream[dropped + 4:dropped + 6]:
        ref.apply(event)
    for event in stream[dropped + 6:]:
        assert sync.on_event(event) == APPLIED
        ref.apply(event)
    assert sync.book.top(50) == ref.top(50) and sync.gaps == 1


def test_the_first_event_after_a_snapshot_must_straddle_it() -> None:
    spot = DepthSync(usdm=False)
    spot.snapshot(100, [["10", "1"]], [["11", "1"]])
    assert spot.on_event(DepthEvent(90, 100, [], [])) == STALE  # u <= lastUpdateId
    assert spot.on_event(DepthEvent(103, 105, [], [])) == GAP  # U > lastUpdateId + 1: 101-102 missed
    spot.snapshot(100, [], [])
    assert spot.on_event(DepthEvent(95, 104, [["9", "2"]], [])) == APPLIED
    assert spot.on_event(DepthEvent(104, 104, [], [])) == STALE  # a repeat
    assert spot.on_event(DepthEvent(106, 107, [], [])) == GAP
    perp = DepthSync(usdm=True)
    perp.snapshot(100, [], [])
    assert perp.on_event(DepthEvent(90, 99, [], [], 89)) == STALE  # u < lastUpdateId
    assert perp.on_event(DepthEvent(98, 102, [], [], 97)) == APPLIED  # U <= lastUpdateId <= u
    assert perp.on_event(DepthEvent(103, 105, [], [], 101)) == GAP  # pu != previous u


def test_book_best_prices_follow_random_updates_like_the_reference() -> None:
    rng = random.Random(5)
    book, ref = Book(), Reference()
    for _ in range(3000):
        bids = [[str(rng.randint(90, 100)), str(rng.choice([0, 0, 1, 2]))] for _ in range(rng.randint(0, 4))]
        asks = [[str(rng.randint(100, 110)), str(rng.choice([0, 0, 1, 2]))] for _ in range(rng.randint(0, 4))]
        book.apply(bids, asks)
        ref.apply(DepthEvent(0, 0, bids, asks))
        top_bids, top_asks = ref.top(3)
        assert book.top(3) == (top_bids, top_asks)
        assert book.best_bid == (top_bids[0][0] if top_bids else None)
        assert book.best_ask == (top_asks[0][0] if top_asks else None)


OKX_BOOKS = FIXTURES / "okx_public_ws_capture_2022-05-13_books.txt.gz"


def okx_pushes() -> list[tuple[str, str, dict[str, object]]]:
    """(instId, action, data[0]) of each captured ``books`` push, in order."""
    out = []
    with gzip.open(OKX_BOOKS, "rt") as f:
        for line in f:
            msg = json.loads(line.split(": ", 1)[1])
            out.append((msg["arg"]["instId"], msg["action"], msg["data"][0]))
    return out


def test_every_captured_okx_books_push_matches_its_checksum_after_being_applied() -> None:
    pushes = okx_pushes()
    syncs: dict[str, OkxBookSync] = {}
    refs: dict[str, Reference] = {}
    for inst, action, data in pushes:
        sync = syncs.setdefault(inst, OkxBookSync())
        assert sync.on_push(action, data) == APPLIED, (inst, action)
        if action == "snapshot":
            refs[inst] = Reference()
        refs[inst].apply(DepthEvent(0, 0, [lvl[:2] for lvl in data["bids"]],  # type: ignore[index, union-attr]
                                    [lvl[:2] for lvl in data["asks"]]))  # type: ignore[index, union-attr]
    assert {i: (s.checked, s.gaps) for i, s in syncs.items()} == {
        "BTC-USD-220527": (99, 0), "UNI-USD-SWAP": (93, 0), "BTC-USDT": (98, 0)}
    assert sum(s.checked for s in syncs.values()) == len(pushes)
    for inst, sync in syncs.items():
        assert sync.book.top(25) == refs[inst].top(25) and not sync.book.crossed()


def test_a_dropped_okx_update_fails_the_next_checksum_and_the_next_snapshot_resyncs() -> None:
    pushes = [(a, d) for inst, a, d in okx_pushes() if inst == "BTC-USDT"]
    sync = OkxBookSync()
    for action, data in pushes[:40]:
        assert sync.on_push(action, data) == APPLIED
    outcomes = [sync.on_push(action, data) for action, data in pushes[41:]]  # update 40 was lost
    assert outcomes[0] == GAP and set(outcomes[1:]) == {BUFFERED}  # nothing applied until a snapshot
    assert sync.gaps == 1 and sync.book.bids == {}
    # A snapshot of the venue's book now (replaying the whole capture) resyncs it.
    venue = OkxBookSync()
    for action, data in pushes:
        venue.on_push(action, data)
    snapshot = {"bids": [[t[0], t[1], "0", "1"] for _, t in sorted(venue.text[0].items(), reverse=True)],
                "asks": [[t[0], t[1], "0", "1"] for _, t in sorted(venue.text[1].items())]}
    assert sync.on_push("snapshot", snapshot) == APPLIED and sync.resyncs == 1
    assert sync.book.top(25) == venue.book.top(25)


def test_okx_sequence_ids_chain_and_a_keepalive_repeats_the_last() -> None:
    sync = OkxBookSync()
    assert sync.on_push("update", {"bids": [], "asks": [], "seqId": 5, "prevSeqId": 4}) == BUFFERED
    assert sync.on_push("snapshot", {"bids": [["10", "1", "0", "1"]], "asks": [["11", "2", "0", "1"]],
                                     "seqId": 10, "prevSeqId": -1, "checksum": 0}) == APPLIED
    assert sync.on_push("update", {"bids": [["10", "0", "0", "0"]], "asks": [], "seqId": 12,
                                   "prevSeqId": 10}) == APPLIED
    assert (sync.book.best_bid, sync.book.best_ask) == (None, 11.0)
    assert sync.on_push("update", {"bids": [], "asks": [], "seqId": 12, "prevSeqId": 12}) == APPLIED  # keep-alive
    assert sync.on_push("update", {"bids": [], "asks": [], "seqId": 15, "prevSeqId": 13}) == GAP
