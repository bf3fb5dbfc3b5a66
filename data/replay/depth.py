"""The replay's Binance order books, pure: a captured depth stream (``depthUpdate`` events and the REST
snapshot the recorder took) replayed in time with the trade tape, and the book REST ``depth`` reports.

**Capture file.** One line per frame as hftbacktest's collector wrote it: ``<receive ns> <json>``, the JSON
either a combined-stream ``depthUpdate`` envelope or the ``{"lastUpdateId":...}`` REST snapshot
(``data/samples/README.md``). Events are timed by their ``E`` (event time), like the trade tape by trade time.

**The exchange's book.** The replay keeps the book Binance would hold: the snapshot, then every event after
it (``u > lastUpdateId``) as it is sent. ``depth`` REST answers that book and the last update id applied, so a
client that buffers the stream, fetches the snapshot and chains from it stays in sequence, as on Binance.

**Loop passes.** Pass ``p`` is shifted by ``p * shift_ms`` in time (the trade tape's shift) and by
``p * id_span`` in update ids, with ``id_span`` larger than the capture's id range plus a margin, so a new
pass is a sequence gap for the client (it resyncs from the pass's snapshot, which the book restarts from).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import orjson

from data.books import Book


@dataclass(frozen=True, slots=True)
class DepthCapture:
    """A captured depth stream: ``events`` (event time, the event's JSON object) and the REST snapshot."""

    events: tuple[tuple[int, dict[str, object]], ...]
    snapshot_id: int
    snapshot_bids: tuple[tuple[str, str], ...]
    snapshot_asks: tuple[tuple[str, str], ...]

    @property
    def usdm(self) -> bool:
        return bool(self.events) and "pu" in self.events[0][1]


def read_depth_capture(path: Path) -> DepthCapture:
    """Read a capture file (see the module doc); a line that is neither kind is an error naming the line."""
    events: list[tuple[int, dict[str, object]]] = []
    snapshot: dict[str, object] | None = None
    with gzip.open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                body = orjson.loads(line.split(b" ", 1)[1])
                data = body.get("data", body)
                if data.get("e") == "depthUpdate":
                    events.append((int(data["E"]), data))
                elif "lastUpdateId" in body:
                    snapshot = body
                else:
                    raise ValueError("neither a depthUpdate nor a depth snapshot")
            except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"{path}: line {number}: {exc}") from exc
    if snapshot is None or not events:
        raise ValueError(f"{path}: needs depthUpdate events and one depth snapshot")
    events.sort(key=lambda e: e[0])
    return DepthCapture(tuple(events), int(snapshot["lastUpdateId"]),  # type: ignore[call-overload]
                        tuple(map(tuple, snapshot["bids"])), tuple(map(tuple, snapshot["asks"])))  # type: ignore


class DepthFeed:
    """One market's replayed depth: events by global index (across loop passes) and the exchange's book."""

    ID_MARGIN = 1_000_000

    def __init__(self, capture: DepthCapture, *, shift_ms: int) -> None:
        self.capture = capture
        self.usdm = capture.usdm
        self.size = len(capture.events)
        self.shift_ms = shift_ms
        first = int(capture.events[0][1]["U"])  # type: ignore[call-overload]
        last = int(capture.events[-1][1]["u"])  # type: ignore[call-overload]
        self.id_span = last - first + self.ID_MARGIN
        self.book = Book()
        self.last_id = 0
        self._pass = -1
        self._restart(0)

    def ts(self, index: int) -> int:
        p, i = divmod(index, self.size)
        return self.capture.events[i][0] + p * self.shift_ms

    def event(self, index: int) -> dict[str, object]:
        """Event ``index`` as the venue would send it in its pass (ids and times shifted past pass 0)."""
        p, i = divmod(index, self.size)
        data = self.capture.events[i][1]
        if p == 0:
            return data
        shift_ids, shift_ms = p * self.id_span, p * self.shift_ms
        out = dict(data)
        for key in ("U", "u", "pu"):
            if key in out:
                out[key] = int(out[key]) + shift_ids  # type: ignore[call-overload]
        for key in ("E", "T"):
            if key in out:
                out[key] = int(out[key]) + shift_ms  # type: ignore[call-overload]
        return out

    def sent(self, index: int, event: dict[str, object]) -> None:
        """Event ``index`` left the exchange: the exchange's book moves on (a dropped frame still does)."""
        p = index // self.size
        if p != self._pass:
            self._restart(p)
        last = int(event["u"])  # type: ignore[call-overload]
        if last > self.last_id:
            self.book.apply(event["b"], event["a"])  # type: ignore[arg-type]
            self.last_id = last

    def _restart(self, p: int) -> None:
        self._pass = p
        self.book.clear()
        self.book.apply(self.capture.snapshot_bids, self.capture.snapshot_asks)
        self.last_id = self.capture.snapshot_id + p * self.id_span

    def snapshot(self, limit: int, market_ms: int) -> dict[str, object]:
        """The REST ``depth`` body: the best ``limit`` levels of each side and the last update id applied."""
        bids, asks = self.book.top(limit)
        body: dict[str, object] = {"lastUpdateId": self.last_id}
        if self.usdm:
            body |= {"E": market_ms, "T": market_ms}
        return body | {"bids": [[repr(p), repr(s)] for p, s in bids], "asks": [[repr(p), repr(s)] for p, s in asks]}
