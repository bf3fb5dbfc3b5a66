"""Pure parsing of OKX v5 public WebSocket frames and REST candle bodies.

The hot path decodes a frame with one typed msgspec decoder: numeric strings become ``int`` and
``float`` in C, and the decoder itself rejects what a trade may not be (price or size not a positive
finite number, side other than ``buy``/``sell``, non-integer ids or timestamps). The result,
:class:`WireTrade`, is frozen and typed; :func:`to_trade` turns it into the domain
:class:`~config.domain.Trade` where a trade leaves the collector as a value (building a frozen
dataclass costs more than parsing and aggregating the trade together, so the aggregator does not).

**Every trade field must be the protocol's string** (``"px":"42219.9"``, not ``"px":42219.9``) and every
trade of a push must carry the push's ``arg.instId``. The lax decoder would also take JSON numbers, so a
push is accepted as decoded only when its *skeleton* (the frame with digits, signs, dots, whitespace,
capitals and the letters of ``buy``/``sell`` deleted, one C call) is that of a known OKX layout — which
pins every key and says which values are strings — and each trade's ``instId`` equals the push's. Any
other push (or one the decoder refused) is salvaged trade by trade (:func:`_salvage`): a trade that is
not the protocol's is reported to ``on_rejected`` as a :class:`~config.errors.MalformedMessageError`
(``bad_trade``, ``wrong_inst_id``) and skipped, the push's other trades are kept.

Anything else that does not decode raises :class:`~config.errors.MalformedMessageError` whose ``kind``
groups it for counting (``not_json``, ``not_object``, ``bad_event``, ``unexpected_channel``…).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec
import orjson

from config.domain import Candle, Side, Timeframe, Trade
from config.errors import MalformedMessageError

EXCHANGE = "okx"
PONG_BYTES = b"pong"

_Positive = Annotated[float, msgspec.Meta(gt=0, lt=1e300)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0, lt=1e300)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0, lt=10**14)]
_TradeId = Annotated[int, msgspec.Meta(ge=0)]


class WireTrade(msgspec.Struct, frozen=True, gc=False):
    """One entry of a ``trades`` push, typed and validated by the decoder (``instId`` is checked
    against the push's by :func:`decode_public`; trades built by hand may leave it empty)."""

    tradeId: _TradeId
    px: _Positive
    sz: _Positive
    side: Side
    ts: _Timestamp
    instId: str = ""


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

RejectedHandler = Callable[[MalformedMessageError], None]


def _raise(exc: MalformedMessageError) -> None:
    raise exc


def decode_public(raw: str | bytes, on_rejected: RejectedHandler = _raise) -> PublicFrame:
    """Decode one public-socket JSON frame (not ``pong``).

    A ``trades`` push comes back with only its valid trades; each trade that is not the protocol's
    (a field that is not its string, a value out of range, another ``instId`` than the push's) is handed
    to ``on_rejected`` (by default: raised). Raises :class:`MalformedMessageError` for anything that is
    not a well-formed event or ``trades`` push.
    """
    try:
        frame = _public_decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return _salvage(raw, on_rejected, exc)
    data = frame.data
    arg = frame.arg
    if data is not None and arg is not None and arg.channel == "trades" and arg.instId and frame.event is None:
        if type(raw) is str:
            raw = raw.encode()
        n = len(data)
        skeletons = _SKELETONS.get(n) or _skeletons(n)
        if raw.translate(None, _DELETED) in skeletons:  # type: ignore[union-attr]
            symbol = arg.instId
            if n == 1:
                if data[0].instId == symbol:
                    return frame
            else:
                for t in data:
                    if t.instId != symbol:
                        break
                else:
                    return frame
        return _salvage(raw, on_rejected, None)
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


# ---------------------------------------------------------------------------- the skeleton check

# Deleted: what numbers and the protocol's string values are made of. Kept: structure, quotes,
# backslashes (an escape sends the push to the salvage path) and enough of every key to tell them apart.
_DELETED = b"0123456789.-+ \t\r\nABCDEFGHIJKLMNOPQRSTUVWXYZbuysel"
_FIELDS = '"instId":"A","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"'
TRADE_LAYOUTS = (  # the entries OKX sends: 2021-2022 recordings, and the current documentation
    "{" + _FIELDS + "}",
    "{" + _FIELDS + ',"count":"1"}',
    "{" + _FIELDS + ',"count":"1","source":"0"}',
    "{" + _FIELDS + ',"count":"1","source":"0","seqId":1}',
)
_PUSH = '{"arg":{"channel":"trades","instId":"A"},"data":[%s]}'
_SKELETONS: dict[int, tuple[bytes, ...]] = {}
_SKELETON_CACHE = 512  # pushes of up to this many trades keep their skeletons


def skeleton(raw: bytes) -> bytes:
    """``raw`` without the bytes numbers and the protocol's string values are made of."""
    return raw.translate(None, _DELETED)


def _skeletons(n: int) -> tuple[bytes, ...]:
    """The skeletons of a push of ``n`` trades, one per layout (all its trades of one layout)."""
    found = tuple(skeleton((_PUSH % ",".join([layout] * n)).encode()) for layout in TRADE_LAYOUTS)
    if n <= _SKELETON_CACHE:
        _SKELETONS[n] = found
    return found


# ---------------------------------------------------------------------------- the salvage path

_STRING_FIELDS = ("instId", "tradeId", "px", "sz", "side", "ts")


def _salvage(raw: str | bytes, on_rejected: RejectedHandler, error: Exception | None) -> PublicFrame:
    """A frame the fast path did not take: a ``trades`` push keeps its valid trades (each other one
    goes to ``on_rejected``); anything else raises a classified :class:`MalformedMessageError`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedMessageError("not_json", f"{error}; frame starts {_head(raw)!r}") from None
    if not isinstance(value, dict):
        raise MalformedMessageError("not_object", f"expected a JSON object, got {_head(raw)!r}")
    if "event" in value:
        raise MalformedMessageError("bad_event", f"{error}; frame starts {_head(raw)!r}")
    arg, data = value.get("arg"), value.get("data")
    if not isinstance(arg, dict) or data is None:
        raise MalformedMessageError("no_arg_or_data" if data is None or arg is None else "bad_frame",
                                    f"expected an event or arg+data, got {_head(raw)!r}")
    if arg.get("channel") != "trades":
        raise MalformedMessageError("unexpected_channel", f"push on channel {arg.get('channel')!r}; "
                                    "only 'trades' is subscribed on the public socket")
    symbol = arg.get("instId")
    if not isinstance(symbol, str) or not symbol or not isinstance(data, list):
        raise MalformedMessageError("no_arg_or_data", f"expected arg.instId and a list of trades, got "
                                    f"{_head(raw)!r}")
    trades = []
    for entry in data:
        trade = _trade(entry, symbol, on_rejected)
        if trade is not None:
            trades.append(trade)
    return PublicFrame(arg=Arg("trades", symbol), data=trades)


def _trade(entry: Any, symbol: str, on_rejected: RejectedHandler) -> WireTrade | None:
    """One entry of a salvaged push, by the rules of the fast path; None (reported) when not valid."""
    if not isinstance(entry, dict):
        on_rejected(MalformedMessageError("bad_trade", f"expected a trade object in {symbol!r} push, got "
                                          f"{_short(entry)}"))
        return None
    for key in _STRING_FIELDS:
        value = entry.get(key)
        if type(value) is not str:
            on_rejected(MalformedMessageError("bad_trade", f"{key} {_short(value)} in a {symbol!r} trade; "
                                              f"expected a JSON string (trade {_short(entry)})"))
            return None
    if entry["instId"] != symbol:
        on_rejected(MalformedMessageError("wrong_inst_id", f"a {entry['instId']!r} trade in a {symbol!r} push "
                                          f"(trade {_short(entry)})"))
        return None
    try:
        return msgspec.convert(entry, WireTrade, strict=False)
    except msgspec.ValidationError as exc:
        on_rejected(MalformedMessageError("bad_trade", f"{exc} in a {symbol!r} trade (trade {_short(entry)})"))
        return None


def _short(value: Any, size: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= size else text[:size] + "…"


def _head(raw: str | bytes, size: int = 120) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return text[:size]


def to_trade(wire: WireTrade, symbol: str, received_ms: int) -> Trade:
    """The domain value of one wire trade."""
    return Trade(EXCHANGE, symbol, wire.tradeId, wire.ts, wire.px, wire.sz, wire.side, received_ms)


def parse_trades(raw: str | bytes, received_ms: int, on_rejected: RejectedHandler = _raise) -> list[Trade]:
    """Trades of one ``trades`` push as domain values (empty for events).

    Raises :class:`MalformedMessageError` like :func:`decode_public`.
    """
    frame = decode_public(raw, on_rejected)
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
