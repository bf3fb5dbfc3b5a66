"""The perpetual-swap state shell: a venue's funding-rate, open-interest and liquidation streams -> the bus and
the database.

The stream (a :class:`~data.streams.ChannelStream` with the venue's parser from :mod:`data.derivatives`) hands
over parsed messages; each is published at once on ``funding``/``open_interest``/``liquidations``
``.<exchange>.<symbol>`` and queued for its table (``funding_rates``, ``open_interest``, ``liquidations``),
written every ``flush_interval_s``; while the database is down they wait (:class:`~data.pending.PendingWrites`).

Venues: OKX (``funding-rate`` and ``open-interest`` per swap, ``liquidation-orders`` for all swaps), Binance
USDⓈ-M (``<symbol>@markPrice@1s``, ``<symbol>@forceOrder``) and Bybit linear (``tickers.<symbol>``: funding and
open interest; ``allLiquidation.<symbol>``), for the ``-SWAP`` symbols collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from data import topics
from data.bus import Bus
from data.derivatives import Derivative, binance_derivatives_frame, bybit_derivatives_frame, okx_derivatives_frame
from data.messages import derivative_kind, derivative_to_message
from data.pending import PendingWrites
from data.streams import ChannelStream, with_helpers
from database.repositories.derivatives import add_derivatives

log = logging.getLogger(__name__)

STATE_EXCHANGES = ("okx", "binance", "bybit")
BYBIT_MAX_ARGS = 10  # topics per subscribe request


def perpetuals(symbols: Sequence[str]) -> list[str]:
    return [s for s in symbols if s.endswith("-SWAP")]


def make_state_stream(exchange: str, url: str, symbols: Sequence[str],
                      on_messages: Any) -> ChannelStream:
    """The venue's derivatives stream for ``symbols`` (perpetuals, ours); ``url`` is OKX's public socket,
    Binance's USDⓈ-M one or Bybit's linear one."""
    if exchange == "okx":
        args = [{"channel": c, "instId": s} for s in symbols for c in ("funding-rate", "open-interest")]
        args.append({"channel": "liquidation-orders", "instType": "SWAP"})
        request = json.dumps({"op": "subscribe", "args": args})
        return ChannelStream("okx derivatives", url, [request], okx_derivatives_frame, on_messages,
                             ping_text="ping")
    if exchange == "binance":
        names = ["".join(s.split("-")[:2]).lower() for s in symbols]
        params = [f"{n}@{kind}" for n in names for kind in ("markPrice@1s", "forceOrder")]
        request = json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1})
        return ChannelStream("binance derivatives", url, [request],
                             lambda raw, _received: binance_derivatives_frame(raw), on_messages)
    if exchange == "bybit":
        topics_ = [f"{kind}.{''.join(s.split('-')[:2])}" for s in symbols for kind in ("tickers", "allLiquidation")]
        requests = [json.dumps({"req_id": f"state{i}", "op": "subscribe", "args": topics_[i:i + BYBIT_MAX_ARGS]})
                    for i in range(0, len(topics_), BYBIT_MAX_ARGS)]
        return ChannelStream("bybit derivatives", url, requests,
                             lambda raw, _received: bybit_derivatives_frame(raw), on_messages,
                             ping_text='{"op":"ping"}', ping_always=True)
    raise ValueError(f"funding, open interest and liquidations are collected on {', '.join(STATE_EXCHANGES)} "
                     f"only, not {exchange!r}")


class MarketStateKeeper:
    def __init__(self, exchange: str, bus: Bus, db: Engine, *, flush_interval_s: float = 1.0) -> None:
        self.exchange = exchange
        self.bus = bus
        self.flush_interval_s = flush_interval_s
        self.pending: PendingWrites[Derivative] = PendingWrites(db, add_derivatives, "funding/OI/liquidations")
        self._outbox: asyncio.Queue[Derivative] = asyncio.Queue(maxsize=100_000)
        self.received: dict[str, int] = {"funding": 0, "open_interest": 0, "liquidations": 0}
        self.published = 0
        self.latest_funding: dict[str, Derivative] = {}

    def on_messages(self, messages: list[Derivative]) -> None:
        """From the stream, on the event loop: queue for the bus and the database (never blocks)."""
        self.pending.add(messages)
        for m in messages:
            kind = derivative_kind(m)
            self.received[kind] += 1
            if kind == "funding":
                self.latest_funding[m.symbol] = m
            with contextlib.suppress(asyncio.QueueFull):  # the bus is far behind: the table still gets it
                self._outbox.put_nowait(m)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await with_helpers(stop.wait(), self._publish(), self._store(stop))
        finally:
            await self.pending.flush()

    async def _publish(self) -> None:
        while True:
            m = await self._outbox.get()
            try:
                await self.bus.publish(topics.market_state(derivative_kind(m), m.exchange, m.symbol),
                                       derivative_to_message(m))
                self.published += 1
            except Exception as exc:  # noqa: BLE001 - a bus outage: the table keeps it
                log.debug("market state: publish failed", extra={"error": str(exc)[:200]})

    async def _store(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.flush_interval_s)
            await self.pending.flush()

    def health(self) -> dict[str, Any]:
        p = self.pending
        return {"received": dict(self.received), "published": self.published, "stored": p.stored,
                "pending": len(p.items), "dropped": p.dropped, "db_ok": p.db_ok,
                "funding": {s: m.rate for s, m in sorted(self.latest_funding.items())}}  # type: ignore[union-attr]
