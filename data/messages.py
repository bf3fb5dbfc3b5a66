"""JSON codecs for what travels on the bus (orjson on the hot path)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from config.domain import (
    BookTop,
    Candle,
    FundingRate,
    Liquidation,
    OpenInterest,
    Side,
    SignalEvent,
    SignalType,
    Timeframe,
)
from data.derivatives import Derivative


def dumps(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def loads(raw: bytes | str) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"bus message must be a JSON object, got {type(value).__name__}")
    return value


def candle_to_message(c: Candle) -> dict[str, Any]:
    return {
        "exchange": c.exchange, "symbol": c.symbol, "timeframe": c.timeframe.value,
        "open_time_ms": c.open_time_ms, "open": c.open, "high": c.high, "low": c.low, "close": c.close,
        "volume": c.volume, "quote_volume": c.quote_volume, "buy_volume": c.buy_volume,
        "trade_count": c.trade_count, "closed": c.closed, "backfilled": c.backfilled,
    }


def candle_from_message(m: dict[str, Any]) -> Candle:
    return Candle(
        exchange=m["exchange"], symbol=m["symbol"], timeframe=Timeframe(m["timeframe"]),
        open_time_ms=int(m["open_time_ms"]), open=float(m["open"]), high=float(m["high"]),
        low=float(m["low"]), close=float(m["close"]), volume=float(m["volume"]),
        quote_volume=float(m.get("quote_volume", 0.0)), buy_volume=float(m.get("buy_volume", 0.0)),
        trade_count=int(m.get("trade_count", 0)), closed=bool(m.get("closed", True)),
        backfilled=bool(m.get("backfilled", False)),
    )


def signal_to_message(s: SignalEvent) -> dict[str, Any]:
    return {
        "source": s.source, "strategy": s.strategy, "exchange": s.exchange, "symbol": s.symbol,
        "timeframe": s.timeframe.value, "candle_time_ms": s.candle_time_ms,
        "signal_type": s.signal_type.value, "strength": s.strength, "reason": s.reason,
        "price": s.price, "params": s.params,
    }


def signal_from_message(m: dict[str, Any]) -> SignalEvent:
    return SignalEvent(
        source=m["source"], strategy=m["strategy"], exchange=m["exchange"], symbol=m["symbol"],
        timeframe=Timeframe(m["timeframe"]), candle_time_ms=int(m["candle_time_ms"]),
        signal_type=SignalType(m["signal_type"]), strength=float(m["strength"]), reason=m["reason"],
        price=m.get("price"), params=dict(m.get("params") or {}),
    )


def book_to_message(b: BookTop) -> dict[str, Any]:
    return {"exchange": b.exchange, "symbol": b.symbol, "ts_ms": b.ts_ms, "bids": [list(x) for x in b.bids],
            "asks": [list(x) for x in b.asks], "update_id": b.update_id}


def book_from_message(m: dict[str, Any]) -> BookTop:
    return BookTop(exchange=m["exchange"], symbol=m["symbol"], ts_ms=int(m["ts_ms"]),
                   bids=tuple((float(p), float(s)) for p, s in m["bids"]),
                   asks=tuple((float(p), float(s)) for p, s in m["asks"]),
                   update_id=None if m.get("update_id") is None else int(m["update_id"]))


_KINDS: dict[type, str] = {FundingRate: "funding", OpenInterest: "open_interest", Liquidation: "liquidations"}


def derivative_kind(m: Derivative) -> str:
    """The channel family of a message (``funding``, ``open_interest``, ``liquidations``: data/topics.py)."""
    return _KINDS[type(m)]


def derivative_to_message(m: Derivative) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": derivative_kind(m)}
    for f in fields(m):
        value = getattr(m, f.name)
        out[f.name] = value.value if isinstance(value, Side) else value
    return out


def derivative_from_message(m: dict[str, Any]) -> Derivative:
    kind = m["kind"]
    base = (str(m["exchange"]), str(m["symbol"]), str(m["venue_symbol"]), int(m["ts_ms"]))
    if kind == "funding":
        return FundingRate(*base, None if m["rate"] is None else float(m["rate"]), int(m["funding_time_ms"]),
                           None if m.get("next_rate") is None else float(m["next_rate"]),
                           None if m.get("mark_price") is None else float(m["mark_price"]))
    if kind == "open_interest":
        return OpenInterest(*base, float(m["contracts"]), None if m.get("base") is None else float(m["base"]))
    if kind == "liquidations":
        return Liquidation(*base, Side(m["side"]), float(m["price"]), float(m["size"]))
    raise ValueError(f"unknown kind {kind!r}")
