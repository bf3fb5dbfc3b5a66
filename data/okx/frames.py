"""Pure parsing of OKX v5 public WebSocket frames and REST candle bodies.

The hot path decodes a frame with one typed msgspec decoder: numeric strings become ``int`` and
``float`` in C, and the decoder itself rejects what a trade may not be (price or size not a positive
finite number, side other than ``buy``/``sell``, non-integer ids or timestamps). The result,
:class:`WireTrade`, is frozen and typed; :func:`to_trade` turns it into the domain
:class:`~config.domain.Trade` where a trade leaves the collector as a value (building a frozen
dataclass costs more than parsing and aggregating the trade together, so the aggregator does not).

Anything that does not decode raises :class:`~config.errors.MalformedMessageError` whose ``kind``
groups it for counting (``not_json``, ``not_object``, ``bad_trade``, ``bad_event``…).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
import orjson

from config.domain import Candle, Side, Timeframe, Trade
from config.errors import MalformedMessageError

EXCHANGE = "okx"
PONG = "pong"

_Positive = Annotated[float, msgspec.Meta(gt=0, lt=1e300)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0, lt=1e300)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0, lt=10**14)]
_TradeId = Annotated[int, msgspec.Meta(ge=0)]


class WireTrade(msgspec.Struct, frozen=True, gc=False):
    """One entry of a ``trades`` push, typed and validated by the decoder."""

    tradeId: _TradeId
    px: _Positive
    sz: _Positive
    side: Side
    ts: _Timestamp


class Arg(msgspec.Struct, frozen=True, gc=False):
    channel: str
    instId: str = ""


class PublicFrame(msgspec.Struct, frozen=True, gc=False):
    """Any JSON frame of the public socket: a push (``arg`` + ``data``) or an event."""

    arg: Arg | None = None
    data: list[WireTrade] | None = None
    event: str | None = None
    code: str = ""
    msg: str = ""
    id: str = ""
    connId: str = ""


_public_decoder = msgspec.json.Decoder(PublicFrame, strict=False)

KNOWN_EVENTS = frozenset({"subscribe", "unsubscribe", "error", "notice", "login", "channel-conn-count",
                          "channel-conn-count-error"})


def decode_public(raw: str | bytes) -> PublicFrame:
    """Decode one public-socket JSON frame (not ``pong``).

    Raises :class:`MalformedMessageError` for anything that is not a well-formed event or
    ``trades`` push.
    """
    try:
        frame = _public_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessageError(_classify(raw), f"{exc}; frame starts {_head(raw)!r}") from None
    arg = frame.arg
    if frame.data is not None and arg is not None and arg.channel == "trades" and arg.instId \
            and frame.event is None:
        return frame
    return _check(frame, raw)


def _check(frame: PublicFrame, raw: str | bytes) -> PublicFrame:
    if frame.event is not None:
        if frame.event not in KNOWN_EVENTS:
            raise MalformedMessageError("unknown_event", f"event {frame.event!r}; expected one of "
                                        f"{sorted(KNOWN_EVENTS)}")
        return frame
    if frame.arg is None or frame.data is None:
        raise MalformedMessageError("no_arg_or_data", f"expected an event or arg+data, got {_head(raw)!r}")
    if frame.arg.channel != "trades":
        raise MalformedMessageError("unexpected_channel", f"push on channel {frame.arg.channel!r}; "
                                    "only 'trades' is subscribed on the public socket")
    raise MalformedMessageError("no_arg_or_data", "trades push without arg.instId")


def _head(raw: str | bytes, size: int = 120) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return text[:size]


def _classify(raw: str | bytes) -> str:
    """Group a frame the typed decoder refused, by what is wrong with it."""
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError, UnicodeDecodeError):
        return "not_json"
    if not isinstance(value, dict):
        return "not_object"
    if "event" in value:
        return "bad_event"
    if "data" in value:
        arg = value.get("arg")
        if isinstance(arg, dict) and arg.get("channel") not in (None, "trades"):
            return "unexpected_channel"
        return "bad_trade"
    return "bad_frame"


def to_trade(wire: WireTrade, symbol: str, received_ms: int) -> Trade:
    """The domain value of one wire trade."""
    return Trade(EXCHANGE, symbol, wire.tradeId, wire.ts, wire.px, wire.sz, wire.side, received_ms)


def parse_trades(raw: str | bytes, received_ms: int) -> list[Trade]:
    """Trades of one ``trades`` push as domain values (empty for events).

    Raises :class:`MalformedMessageError` like :func:`decode_public`.
    """
    frame = decode_public(raw)
    if frame.data is None or frame.arg is None:
        return []
    return [to_trade(w, frame.arg.instId, received_ms) for w in frame.data]


def error_symbol(message: str, candidates: Sequence[str]) -> str | None:
    """Which of ``candidates`` an OKX ``error`` event is about (OKX names it only in ``msg``)."""
    for symbol in sorted(candidates, key=len, reverse=True):
        if f"instId:{symbol}" in message or f'"{symbol}"' in message or f"'{symbol}'" in message:
            return symbol
    return None


# ---------------------------------------------------------------------------- REST candles


class _RestBody(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: list[list[str]] = []


_rest_decoder = msgspec.json.Decoder(_RestBody)


class OkxRestError(Exception):
    """A REST reply with a non-"0" ``code`` (``50011`` = rate limited)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"OKX REST error {code}: {message}")


def parse_candle_rows(raw: bytes | str, symbol: str, *, only_confirmed: bool = True) -> list[Candle]:
    """1m candles of a ``/market/(history-)candles`` body, oldest first.

    Rows are ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`` (newest first on the wire).
    ``volume`` = ``vol`` (base currency on SPOT, contracts on derivatives, like a trade's ``sz``),
    ``quote_volume`` = ``volCcyQuote``. OKX gives no trade count or taker-buy volume: both are 0.
    """
    try:
        body = _rest_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessageError("bad_rest_body", f"{exc}; body starts {_head(raw)!r}") from None
    if body.code != "0":
        raise OkxRestError(body.code, body.msg)
    candles = []
    for row in body.data:
        if len(row) < 6:
            raise MalformedMessageError("bad_candle_row", f"expected >= 6 fields, got {row!r}")
        if only_confirmed and len(row) >= 9 and row[8] != "1":
            continue
        try:
            quote = float(row[7]) if len(row) >= 8 else 0.0
            candles.append(Candle(EXCHANGE, symbol, Timeframe.M1, int(row[0]), float(row[1]), float(row[2]),
                                  float(row[3]), float(row[4]), float(row[5]), quote))
        except ValueError as exc:
            raise MalformedMessageError("bad_candle_row", f"{exc} in {row!r}") from None
    candles.sort(key=lambda c: c.open_time_ms)
    return candles
