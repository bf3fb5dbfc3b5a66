"""Perpetual-swap market state from the venues' public streams, pure (issue 14.3): funding rates, open interest
and liquidations, as frozen messages, parsed from OKX v5 (``funding-rate``, ``open-interest``,
``liquidation-orders``), Binance USDⓈ-M (``markPriceUpdate``, ``forceOrder``) and Bybit v5 (``tickers``,
``allLiquidation``) pushes.

Every parser takes the decoded JSON of one push (or one item of its ``data``) and returns messages, or raises
``ValueError`` naming what is wrong; the stream shell counts those as malformed and goes on. Names are ours
(``BTC-USDT-SWAP`` for a USDT-margined perpetual on every venue); the venue's own name is kept in ``venue_symbol``.
Fields a venue leaves out (OKX sometimes sends ``funding-rate`` without ``fundingRate``) are None, not 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from config.domain import FundingRate, Liquidation, OpenInterest, Side
from config.errors import MalformedMessageError

__all__ = ["Derivative", "FundingRate", "Liquidation", "OpenInterest"]  # the messages live in config.domain

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD")  # quote currencies of the venues' concatenated names


def ours(venue_symbol: str) -> str:
    """A Binance / Bybit derivative's name as ours (OKX's): ``BTCUSDT`` (perpetual) -> ``BTC-USDT-SWAP``,
    ``BTCUSD`` (inverse perpetual) -> ``BTC-USD-SWAP``, ``BTCBUSD_210129`` (dated future) -> ``BTC-BUSD-210129``."""
    pair, _, expiry = venue_symbol.partition("_")
    for quote in QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote) and (not expiry or expiry.isdigit()):
            return f"{pair[:-len(quote)]}-{quote}-{expiry or 'SWAP'}"
    raise ValueError(f"cannot split {venue_symbol!r} into base and quote (known quotes: {', '.join(QUOTES)})")


def _num(item: Mapping[str, Any], key: str, *, optional: bool = False) -> float | None:
    value = item.get(key)
    if value in (None, ""):
        if optional:
            return None
        raise ValueError(f"missing {key!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key!r} is not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{key!r} is not finite: {value!r}")
    return number


def _int(item: Mapping[str, Any], key: str) -> int:
    value = _num(item, key)
    assert value is not None
    return int(value)


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {key!r}")
    return value


def _side(value: object) -> Side:
    text = str(value).lower()
    if text not in ("buy", "sell"):
        raise ValueError(f"side is neither buy nor sell: {value!r}")
    return Side(text)


# ------------------------------------------------------------------ OKX v5


def okx_funding(item: Mapping[str, Any], ts_ms: int) -> FundingRate:
    """One ``funding-rate`` data item, timed by its ``ts`` (old captures have none: ``ts_ms``, the receive time)."""
    inst = _text(item, "instId")
    if item.get("ts") not in (None, ""):
        ts_ms = _int(item, "ts")
    return FundingRate("okx", inst, inst, ts_ms, _num(item, "fundingRate", optional=True),
                       _int(item, "fundingTime"), _num(item, "nextFundingRate", optional=True))


def okx_open_interest(item: Mapping[str, Any]) -> OpenInterest:
    inst = _text(item, "instId")
    return OpenInterest("okx", inst, inst, _int(item, "ts"), _num(item, "oi") or 0.0,  # type: ignore[arg-type]
                        _num(item, "oiCcy", optional=True))


def okx_liquidations(item: Mapping[str, Any]) -> list[Liquidation]:
    """One ``liquidation-orders`` data item: an instrument with its ``details`` (one per forced order)."""
    inst = _text(item, "instId")
    details = item.get("details")
    if not isinstance(details, list):
        raise ValueError("missing 'details'")
    return [Liquidation("okx", inst, inst, _int(d, "ts"), _side(d.get("side")), _num(d, "bkPx"),  # type: ignore[arg-type]
                        _num(d, "sz")) for d in details]  # type: ignore[arg-type]


# ------------------------------------------------------------------ Binance USDⓈ-M


def binance_mark_price(data: Mapping[str, Any]) -> FundingRate:
    """A ``markPriceUpdate`` (``<symbol>@markPrice``): mark price, funding rate ``r``, next funding time ``T``."""
    if data.get("e") != "markPriceUpdate":
        raise ValueError(f"not a markPriceUpdate: e={data.get('e')!r}")
    venue = _text(data, "s")
    return FundingRate("binance", ours(venue), venue, _int(data, "E"), _num(data, "r", optional=True),
                       _int(data, "T"), None, _num(data, "p", optional=True))


def binance_force_order(data: Mapping[str, Any]) -> Liquidation:
    """A ``forceOrder`` (``<symbol>@forceOrder``); its order ``o`` carries side, price and original quantity."""
    if data.get("e") != "forceOrder":
        raise ValueError(f"not a forceOrder: e={data.get('e')!r}")
    order = data.get("o")
    if not isinstance(order, Mapping):
        raise ValueError("missing 'o'")
    venue = _text(order, "s")
    price = _num(order, "ap", optional=True) or _num(order, "p")  # the average fill price when it filled
    return Liquidation("binance", ours(venue), venue, _int(order, "T"), _side(order.get("S")),
                       price, _num(order, "q"))  # type: ignore[arg-type]


# ------------------------------------------------------------------ Bybit v5 (linear)


def bybit_ticker(push: Mapping[str, Any]) -> tuple[FundingRate | None, OpenInterest | None]:
    """A linear ``tickers.<symbol>`` push (snapshot or delta): the funding and open-interest fields it carries
    (a delta may carry neither)."""
    data = push.get("data")
    if not isinstance(data, Mapping):
        raise ValueError("missing 'data'")
    venue = _text(data, "symbol")
    ts = _int(push, "ts")
    funding = None
    if data.get("fundingRate") not in (None, "") and data.get("nextFundingTime") not in (None, ""):
        funding = FundingRate("bybit", ours(venue), venue, ts, _num(data, "fundingRate"),
                              _int(data, "nextFundingTime"), None, _num(data, "markPrice", optional=True))
    oi = None
    if data.get("openInterest") not in (None, ""):
        oi = OpenInterest("bybit", ours(venue), venue, ts, _num(data, "openInterest"))  # type: ignore[arg-type]
    return funding, oi


def bybit_liquidations(push: Mapping[str, Any]) -> list[Liquidation]:
    """An ``allLiquidation.<symbol>`` push: ``S`` is the liquidated *position's* side (Buy = a long was
    liquidated, so the forced order sells)."""
    rows = push.get("data")
    if not isinstance(rows, list):
        raise ValueError("missing 'data'")
    out = []
    for row in rows:
        venue = _text(row, "s")
        position = _side(row.get("S"))
        out.append(Liquidation("bybit", ours(venue), venue, _int(row, "T"),
                               Side.SELL if position is Side.BUY else Side.BUY, _num(row, "p"),  # type: ignore[arg-type]
                               _num(row, "v")))  # type: ignore[arg-type]
    return out


# ------------------------------------------------------------------ whole frames (what a stream shell receives)

Derivative = FundingRate | OpenInterest | Liquidation


def _frame(raw: bytes | str) -> dict[str, Any]:
    """A frame as a JSON object; :class:`MalformedMessageError` ``not_json`` / ``not_object`` otherwise."""
    try:
        frame = json.loads(raw)
    except ValueError as exc:
        raise MalformedMessageError("not_json", f"{exc}; frame starts {str(raw)[:120]!r}") from None
    if not isinstance(frame, dict):
        raise MalformedMessageError("not_object", f"frame is not a JSON object: {str(raw)[:120]!r}")
    return frame


def okx_derivatives_frame(raw: bytes | str, received_ms: int) -> list[Derivative] | None:
    """One frame of an OKX public socket subscribed to ``funding-rate``, ``open-interest`` and
    ``liquidation-orders``: the messages of a push, or ``None`` for an event (``subscribe`` ack, ``error``,
    ``pong``). A push that does not parse raises :class:`MalformedMessageError` naming the channel."""
    if raw in (b"pong", "pong"):
        return None
    frame = _frame(raw)
    if frame.get("event") == "error":  # a refused subscription: counted (as "refused") and logged once
        raise MalformedMessageError("refused", f"{frame.get('code')}: {frame.get('msg')}")
    if "event" in frame:
        return None
    channel = frame.get("arg", {}).get("channel") if isinstance(frame.get("arg"), dict) else None
    data = frame.get("data")
    if not isinstance(data, list):
        raise MalformedMessageError("unexpected_frame", f"neither a push nor an event: {str(raw)[:120]!r}")
    try:
        if channel == "funding-rate":
            return [okx_funding(item, received_ms) for item in data]
        if channel == "open-interest":
            return [okx_open_interest(item) for item in data]
        if channel == "liquidation-orders":
            return [liq for item in data for liq in okx_liquidations(item)]
    except (ValueError, TypeError, AttributeError) as exc:
        raise MalformedMessageError(f"bad_{channel}", f"{exc}: {str(raw)[:200]!r}") from None
    raise MalformedMessageError("unknown_channel", f"a push of channel {channel!r}: {str(raw)[:120]!r}")


def binance_derivatives_frame(raw: bytes | str) -> list[Derivative] | None:
    """One frame of a USDⓈ-M socket subscribed to ``<symbol>@markPrice@1s`` and ``<symbol>@forceOrder``
    (combined-stream envelopes or raw events): the message, or ``None`` for a request's reply."""
    frame = _frame(raw)
    if "code" in frame and "msg" in frame:  # a refused request
        raise MalformedMessageError("refused", f"{frame.get('code')}: {frame.get('msg')}")
    data = frame.get("data", frame)
    if not isinstance(data, dict) or ("result" in frame and "id" in frame):
        return None
    kind = data.get("e")
    try:
        if kind == "markPriceUpdate":
            return [binance_mark_price(data)]
        if kind == "forceOrder":
            return [binance_force_order(data)]
    except (ValueError, TypeError, AttributeError) as exc:
        raise MalformedMessageError(f"bad_{kind}", f"{exc}: {str(raw)[:200]!r}") from None
    raise MalformedMessageError("unknown_event", f"event {kind!r}: {str(raw)[:120]!r}")


def bybit_derivatives_frame(raw: bytes | str) -> list[Derivative] | None:
    """One frame of a linear socket subscribed to ``tickers.<symbol>`` and ``allLiquidation.<symbol>``: the
    messages of a push, or ``None`` for a reply (``subscribe``, ``pong``) or a ticker delta with neither funding
    nor open interest."""
    frame = _frame(raw)
    if "op" in frame:
        if frame.get("success") is False:
            raise MalformedMessageError("refused", f"{frame.get('op')}: {frame.get('ret_msg')}")
        return None
    topic = frame.get("topic")
    if not isinstance(topic, str):
        raise MalformedMessageError("unexpected_frame", f"neither a push nor a reply: {str(raw)[:120]!r}")
    channel = topic.partition(".")[0]
    try:
        if channel == "tickers":
            return [m for m in bybit_ticker(frame) if m is not None] or None
        if channel == "allLiquidation":
            return bybit_liquidations(frame)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MalformedMessageError(f"bad_{channel}", f"{exc}: {str(raw)[:200]!r}") from None
    raise MalformedMessageError("unknown_topic", f"a push of {topic!r}: {str(raw)[:120]!r}")
