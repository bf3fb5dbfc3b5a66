"""The replay's OKX order books, pure: a captured ``books`` stream replayed in time with the trade tape, the
book OKX would hold, and the pushes a subscriber gets.

A capture is the list of ``books`` pushes as recorded (``action`` ``snapshot`` or ``update``, CRC32
``checksum``), each timed by its ``data[0].ts``. The replay keeps the exchange's book by applying every push
(:class:`~data.books.OkxBookSync`). A new subscriber first gets a ``snapshot`` push of that book (the best 400
levels a side, its checksum, the last ``seqId`` when the capture has them), then the captured updates as they
come; ``books5`` subscribers get the best 5 levels after every change (no checksum, like OKX's ``books5``).
Levels are sent as ``[price, size, "0", count]``; the replay does not know the order counts of a level it
built itself, so those say ``"1"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from data.books import OkxBookSync, okx_checksum

SNAPSHOT_LEVELS = 400


def read_okx_books_capture(lines: Sequence[str], symbol: str) -> list[dict[str, object]]:
    """The ``books`` pushes of ``symbol`` among recorded lines (``<receive time>: <json>`` or bare JSON)."""
    out = []
    for line in lines:
        text = line.split(": ", 1)[1] if ": {" in line[:40] else line
        push = json.loads(text)
        if push.get("arg", {}).get("channel") == "books" and push["arg"].get("instId") == symbol:
            out.append(push)
    if not out or out[0].get("action") != "snapshot":
        raise ValueError(f"no books capture of {symbol} starting with a snapshot")
    return out


class OkxBookFeed:
    def __init__(self, symbol: str, pushes: Sequence[dict[str, object]]) -> None:
        self.symbol = symbol
        self.pushes = list(pushes)
        self.sync = OkxBookSync()
        self.ts = [int(p["data"][0]["ts"]) for p in self.pushes]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self.pushes)

    def apply(self, index: int) -> dict[str, object]:
        """Push ``index`` reaches the exchange's book; returns it."""
        push = self.pushes[index]
        self.sync.on_push(str(push.get("action", "update")), push["data"][0])  # type: ignore[index]
        return push

    def _levels(self, n: int) -> tuple[list[list[str]], list[list[str]]]:
        bids, asks = self.sync.book.top(n)
        text_bids, text_asks = self.sync.text
        return ([[*text_bids[p], "0", "1"] for p, _ in bids], [[*text_asks[p], "0", "1"] for p, _ in asks])

    def snapshot(self, ts_ms: int) -> str | None:
        """A ``snapshot`` push of the exchange's book now (None before the capture's first snapshot)."""
        if not self.sync.ready:
            return None
        bids, asks = self._levels(SNAPSHOT_LEVELS)
        data: dict[str, object] = {"asks": asks, "bids": bids, "ts": str(ts_ms),
                                   "checksum": okx_checksum([b[:2] for b in bids[:25]], [a[:2] for a in asks[:25]])}
        if self.sync.seq_id is not None:
            data |= {"seqId": self.sync.seq_id, "prevSeqId": -1}
        return json.dumps({"arg": {"channel": "books", "instId": self.symbol}, "action": "snapshot", "data": [data]},
                          separators=(",", ":"))

    def top5(self, ts_ms: int) -> str:
        bids, asks = self._levels(5)
        return json.dumps({"arg": {"channel": "books5", "instId": self.symbol},
                           "data": [{"asks": asks, "bids": bids, "instId": self.symbol, "ts": str(ts_ms)}]},
                          separators=(",", ":"))
