"""Pure parsing of Binance public market data: spot and USDⓈ-M ``@trade`` stream frames, REST klines and
historical trades, and the symbol names.

**Names.** A market is named the same on every venue: ``BTC-USDT`` for spot, ``BTC-USDT-SWAP`` for the
USDⓈ-M perpetual (OKX's convention). Binance's own name is the base and quote run together (``BTCUSDT``),
lower case in stream names (``btcusdt@trade``); :class:`Market` keeps both, and which endpoint serves it.

**Trades.** One stream frame is one trade, raw (``{"e":"trade",...}`` on ``/ws``) or wrapped in the
combined-stream envelope (``{"stream":"btcusdt@trade","data":{...}}`` on ``/stream``). The typed decoder
turns ``p``/``q`` strings into floats in C and rejects what a trade may not be (non-positive or
non-finite price or size, non-integer id or time). ``m`` true means the buyer was the maker, so the
taker sold. USDⓈ-M frames carry ``X``: only ``MARKET`` trades make candles (Binance leaves insurance-fund
and ADL trades out of its aggregate trades and klines); the others are counted as ``not_market_trade``.
A trade of a symbol the connection did not ask for is ``unknown_symbol``. Anything else that does not
decode raises :class:`~config.errors.MalformedMessageError` whose ``kind`` groups it for counting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from config.domain import Candle, Side, Timeframe
from config.errors import MalformedMessageError, TcpDashboardError
from data.books import DepthEvent
from data.okx.frames import WireTrade
from data.symbols import split_symbol

EXCHANGE = "binance"

_Positive = Annotated[float, msgspec.Meta(gt=0, lt=1e300)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0, lt=10**14)]
_TradeId = Annotated[int, msgspec.Meta(ge=0)]


class Kind(StrEnum):
    SPOT = "spot"
    USDM = "usdm"  # USDⓈ-margined perpetuals (fapi / fstream)


@dataclass(frozen=True, slots=True)
class Market:
    """One market: our name, Binance's name and the endpoint kind that serves it."""

    symbol: str  # ours: BTC-USDT, BTC-USDT-SWAP
    venue_symbol: str  # Binance's: BTCUSDT
    kind: Kind

    @property
    def stream(self) -> str:
        return f"{self.venue_symbol.lower()}@trade"


def market(symbol: str) -> Market:
    """The Binance market of one of our names; raises ``ValueError`` for a name that is not ``BASE-QUOTE``
    or ``BASE-QUOTE-SWAP``."""
    base, quote, perpetual = split_symbol(symbol)
    return Market(symbol, base + quote, Kind.USDM if perpetual else Kind.SPOT)


class _Trade(msgspec.Struct, frozen=True, gc=False):
    e: str
    s: str
    t: _TradeId
    p: _Positive
    q: _Positive
    T: _Timestamp
    m: bool
    X: str = "MARKET"


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    """Any frame: a combined-stream envelope, a raw event, a request's reply or an error."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty when absent (msgspec has no optional Raw)
    e: str | None = None
    id: int | str | None = None
    result: Any = msgspec.UNSET
    code: int | None = None
    msg: str | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_trade_decoder = msgspec.json.Decoder(_Trade, strict=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request (``{"result":null,"id":1}``) or an error (``{"code":2,"msg":...}``)."""

    id: int | str | None
    code: int | None = None
    msg: str = ""

    @property
    def ok(self) -> bool:
        return self.code is None


def _trade_stream(stream: str) -> bool:
    return stream.endswith("@trade")


def _depth_stream(stream: str) -> bool:
    return "@depth" in stream


def _payload(raw: bytes | str, wanted_stream: Callable[[str], bool], event: str) -> bytes | str | Reply | None:
    """The event of one frame (a combined-stream envelope's ``data`` or a raw event), if it is of the stream
    ``wanted_stream`` accepts (raw: of type ``event``); a :class:`Reply`; ``None`` for other streams."""
    try:
        frame = _envelope_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        kind = "not_object" if str(exc).startswith("Expected `object`") else "not_json"
        raise MalformedMessageError(kind, f"{exc}; frame starts {_head(raw)!r}") from None
    if len(frame.data):
        return frame.data if frame.stream is not None and wanted_stream(frame.stream) else None
    if frame.e is not None:
        return raw if frame.e == event else None
    if frame.code is not None or frame.result is not msgspec.UNSET:
        return Reply(frame.id, frame.code, frame.msg or "")
    raise MalformedMessageError("unexpected_frame", f"neither a stream event nor a reply: {_head(raw)!r}")


def decode_frame(raw: bytes | str, names: dict[str, str]) -> tuple[str, WireTrade] | Reply | None:
    """One frame of a Binance public socket.

    ``names`` maps Binance's symbol (``BTCUSDT``) to ours on this connection. Returns ``(symbol, trade)``
    for a trade, a :class:`Reply` for a request's answer or error, ``None`` for other streams' events
    (book tickers, depth…), which this parser does not handle. Raises :class:`MalformedMessageError`.
    """
    payload = _payload(raw, _trade_stream, "trade")
    if payload is None or isinstance(payload, Reply):
        return payload
    try:
        trade = _trade_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessageError("bad_trade", f"{exc}; frame starts {_head(raw)!r}") from None
    if trade.e != "trade":
        raise MalformedMessageError("bad_trade", f"event {trade.e!r} on a trade stream: {_head(raw)!r}")
    symbol = names.get(trade.s)
    if symbol is None:
        raise MalformedMessageError("unknown_symbol", f"a trade of {trade.s!r}, not subscribed here")
    if trade.X != "MARKET":
        raise MalformedMessageError("not_market_trade", f"{trade.X} trade {trade.t} of {trade.s} left out")
    return symbol, WireTrade(trade.t, trade.p, trade.q, Side.SELL if trade.m else Side.BUY, trade.T, symbol)


class _Depth(msgspec.Struct, frozen=True, gc=False):
    e: str
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    pu: int | None = None


_depth_decoder = msgspec.json.Decoder(_Depth)


def decode_depth_frame(raw: bytes | str, names: dict[str, str]) -> tuple[str, DepthEvent, int] | Reply | None:
    """One frame of a socket subscribed to ``<symbol>@depth@100ms``: ``(symbol, event, event time ms)`` for a
    ``depthUpdate``, a :class:`Reply`, or ``None`` for another stream's event. Raises
    :class:`MalformedMessageError` (kinds ``not_json``, ``bad_depth``, ``unknown_symbol``...)."""
    payload = _payload(raw, _depth_stream, "depthUpdate")
    if payload is None or isinstance(payload, Reply):
        return payload
    try:
        d = _depth_decoder.decode(payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessageError("bad_depth", f"{exc}; frame starts {_head(raw)!r}") from None
    if d.e != "depthUpdate" or d.u < d.U:
        raise MalformedMessageError("bad_depth", f"event {d.e!r}, U {d.U} > u {d.u}: {_head(raw)!r}")
    symbol = names.get(d.s)
    if symbol is None:
        raise MalformedMessageError("unknown_symbol", f"a depth update of {d.s!r}, not subscribed here")
    return symbol, DepthEvent(d.U, d.u, d.b, d.a, d.pu), d.E


def _head(raw: bytes | str, size: int = 120) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:size]


# ---------------------------------------------------------------------------- REST


class BinanceRestError(TcpDashboardError):
    """A REST reply ``{"code": -1121, "msg": "Invalid symbol."}`` (or an HTTP 429/418/5xx: rate limit)."""

    def __init__(self, code: int | str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"Binance REST error {code}: {message}")


def _body(raw: bytes | str, what: str) -> Any:
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise MalformedMessageError("bad_rest_body", f"{what}: {exc}; body starts {_head(raw)!r}") from None
    if isinstance(body, dict) and "code" in body and "msg" in body:
        raise BinanceRestError(body["code"], str(body["msg"])[:200])
    return body


def parse_klines(raw: bytes | str, symbol: str, server_ms: int | None = None) -> list[Candle]:
    """1m candles of a ``klines`` body, oldest first: rows ``[open time, o, h, l, c, volume, close time,
    quote volume, trades, taker buy base volume, taker buy quote volume, ignore]``.

    Binance includes the forming minute; with ``server_ms`` given, a row whose close time is not yet
    past is left out. Volume is in base currency (spot) or contracts = base units (USDⓈ-M).
    """
    rows = _body(raw, "klines")
    if not isinstance(rows, list):
        raise MalformedMessageError("bad_rest_body", f"klines: expected a list, got {_head(raw)!r}")
    candles = []
    for row in rows:
        try:
            if server_ms is not None and int(row[6]) >= server_ms:
                continue
            candles.append(Candle(EXCHANGE, symbol, Timeframe.M1, int(row[0]), float(row[1]), float(row[2]),
                                  float(row[3]), float(row[4]), float(row[5]), float(row[7]), float(row[9]),
                                  int(row[8])))
        except (ValueError, TypeError, IndexError) as exc:
            raise MalformedMessageError("bad_candle_row", f"{exc} in {str(row)[:200]}") from None
    candles.sort(key=lambda c: c.open_time_ms)
    return candles


def parse_historical_trades(raw: bytes | str, symbol: str) -> list[WireTrade]:
    """A ``historicalTrades`` body (``[{"id","price","qty","quoteQty","time","isBuyerMaker"...}]``, oldest
    first) as wire trades."""
    rows = _body(raw, "historicalTrades")
    try:
        return [WireTrade(int(r["id"]), float(r["price"]), float(r["qty"]),
                          Side.SELL if r["isBuyerMaker"] else Side.BUY, int(r["time"]), symbol) for r in rows]
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedMessageError("bad_rest_body", f"historicalTrades: {exc}; body starts {_head(raw)!r}") from None


def parse_server_time(raw: bytes | str) -> int:
    body = _body(raw, "time")
    try:
        return int(body["serverTime"])
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedMessageError("bad_rest_body", f"time: {exc}; body starts {_head(raw)!r}") from None


def parse_symbols(raw: bytes | str, kind: Kind) -> list[str]:
    """Our names of the markets an ``exchangeInfo`` body lists as ``TRADING`` (USDⓈ-M: perpetuals only,
    as ``BASE-QUOTE-SWAP``; dated futures such as ``BTCUSDT_240927`` are left out)."""
    body = _body(raw, "exchangeInfo")
    try:
        rows = [s for s in body["symbols"] if s.get("status", "TRADING") == "TRADING"]
        if kind is Kind.USDM:
            return [f"{s['baseAsset']}-{s['quoteAsset']}-SWAP" for s in rows
                    if s.get("contractType", "PERPETUAL") == "PERPETUAL"]
        return [f"{s['baseAsset']}-{s['quoteAsset']}" for s in rows]
    except (TypeError, KeyError, AttributeError) as exc:
        raise MalformedMessageError("bad_rest_body", f"exchangeInfo: {exc}; body starts {_head(raw)!r}") from None


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """A REST ``depth`` body: the update id it holds through and the levels as sent."""

    last_update_id: int
    bids: list[list[str]]
    asks: list[list[str]]


def parse_depth_snapshot(raw: bytes | str) -> DepthSnapshot:
    body = _body(raw, "depth")
    try:
        snapshot = DepthSnapshot(int(body["lastUpdateId"]), list(body["bids"]), list(body["asks"]))
        for level in (*snapshot.bids, *snapshot.asks):
            float(level[0]), float(level[1])
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MalformedMessageError("bad_rest_body", f"depth: {exc!r}; body starts {_head(raw)!r}") from None
    return snapshot
