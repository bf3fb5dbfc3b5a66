"""Pure parsing of Bybit v5 public market data: ``publicTrade`` pushes of spot and linear markets, the
replies of the socket (``subscribe``, ``ping``), and the REST market calls the collector uses.

**Names.** Ours, as on every venue (:mod:`data.symbols`): ``BTC-USDT`` is Bybit spot ``BTCUSDT`` (socket
``/v5/public/spot``, REST ``category=spot``), ``BTC-USDT-SWAP`` the linear perpetual ``BTCUSDT``
(``/v5/public/linear``, ``category=linear``). :class:`Market` keeps both names and the category.

**Trades.** A push (``{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":...,"data":[...]}``) carries up to
1 024 trades, oldest first: ``T`` fill time ms, ``s`` symbol, ``S`` taker side ``Buy``/``Sell``, ``v`` size,
``p`` price, ``i`` the trade id, ``BT`` block trade. The candle engine needs an increasing integer id per
market, and Bybit's ``i`` is a UUID on derivatives (and, on spot, a number Bybit does not document as a
sequence). So each trade gets a **synthetic id**: its fill time shifted left by :data:`ID_SHIFT` bits, plus one
for each earlier trade of the same millisecond (:func:`next_id`): increasing in arrival order, unique, and the
fill time can be read back (:func:`id_time`), which is how a stream gap is repaired (:mod:`data.bybit.rest`).
Bybit's own ``i`` is not kept. Sizes are in base currency on both categories (linear USDT contracts are 1 base
unit each).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from config.domain import Candle, Side, Timeframe
from config.errors import MalformedMessageError, TcpDashboardError, TemporaryError
from data.okx.frames import WireTrade
from data.symbols import split_symbol

EXCHANGE = "bybit"
ID_SHIFT = 12  # synthetic trade id = fill time ms << 12, + n for the n-th trade of that millisecond
TRADE_TOPIC = "publicTrade."

_Positive = Annotated[float, msgspec.Meta(gt=0, lt=1e300)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0, lt=10**14)]


class Kind(StrEnum):
    SPOT = "spot"
    LINEAR = "linear"  # USDT/USDC-margined perpetuals


@dataclass(frozen=True, slots=True)
class Market:
    """One market: our name, Bybit's name and its category (which socket and REST ``category``)."""

    symbol: str  # ours: BTC-USDT, BTC-USDT-SWAP
    venue_symbol: str  # Bybit's: BTCUSDT
    kind: Kind

    @property
    def topic(self) -> str:
        return TRADE_TOPIC + self.venue_symbol


def market(symbol: str) -> Market:
    """The Bybit market of one of our names; ``ValueError`` for a name that is not ``BASE-QUOTE[-SWAP]``."""
    base, quote, perpetual = split_symbol(symbol)
    return Market(symbol, base + quote, Kind.LINEAR if perpetual else Kind.SPOT)


def next_id(ts_ms: int, last: int) -> int:
    """The synthetic id of a trade filled at ``ts_ms`` arriving after the trade whose id is ``last``."""
    first = ts_ms << ID_SHIFT
    return first if first > last else last + 1


def id_time(trade_id: int) -> int:
    """The fill time (ms) a synthetic id was made from."""
    return trade_id >> ID_SHIFT


class _Trade(msgspec.Struct, frozen=True, gc=False):
    T: _Timestamp
    s: str
    S: Literal["Buy", "Sell"]
    v: _Positive
    p: _Positive
    i: str = ""
    BT: bool = False


class _Frame(msgspec.Struct, frozen=True, gc=False):
    """Any frame: a push (``topic``), or the reply to a request (``op``)."""

    topic: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    op: str | None = None
    success: bool | None = None
    ret_msg: str | None = None
    req_id: str | None = None


_frame_decoder = msgspec.json.Decoder(_Frame)
_trades_decoder = msgspec.json.Decoder(list[_Trade], strict=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request: ``{"success":true,"ret_msg":"","op":"subscribe","req_id":"3",...}``, or a pong
    (``op`` ``ping``/``pong``)."""

    op: str
    ok: bool
    msg: str = ""
    req_id: str | None = None


def decode_frame(raw: bytes | str, names: dict[str, str], last_ids: dict[str, int]
                 ) -> tuple[str, list[WireTrade]] | Reply | None:
    """One frame of a Bybit public socket.

    ``names`` maps Bybit's symbol to ours on this connection; ``last_ids`` holds each market's last synthetic
    id and is advanced by the trades returned. Returns ``(symbol, trades)`` for a ``publicTrade`` push, a
    :class:`Reply`, or ``None`` for other topics. Raises :class:`MalformedMessageError` (kinds ``not_json``,
    ``not_object``, ``bad_trade``, ``unknown_symbol``, ``unexpected_frame``), and then ``last_ids`` is unchanged.
    """
    try:
        frame = _frame_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        kind = "not_object" if str(exc).startswith("Expected `object`") else "not_json"
        raise MalformedMessageError(kind, f"{exc}; frame starts {_head(raw)!r}") from None
    topic = frame.topic
    if topic is not None:
        if not topic.startswith(TRADE_TOPIC):
            return None
        venue = topic[len(TRADE_TOPIC):]
        symbol = names.get(venue)
        if symbol is None:
            raise MalformedMessageError("unknown_symbol", f"a push of {topic!r}, not subscribed here")
        try:
            rows = _trades_decoder.decode(frame.data) if len(frame.data) else None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedMessageError("bad_trade", f"{exc}; frame starts {_head(raw)!r}") from None
        if not rows:
            raise MalformedMessageError("bad_trade", f"a trade push without trades: {_head(raw)!r}")
        last = last_ids.get(symbol, 0)
        trades = []
        for row in rows:
            if row.s != venue:
                raise MalformedMessageError("bad_trade", f"a trade of {row.s!r} on {topic!r}")
            last = next_id(row.T, last)
            trades.append(WireTrade(last, row.p, row.v, Side.BUY if row.S == "Buy" else Side.SELL, row.T, symbol))
        last_ids[symbol] = last
        return symbol, trades
    if frame.op is not None:
        return Reply(frame.op, frame.success is not False, frame.ret_msg or "", frame.req_id)
    raise MalformedMessageError("unexpected_frame", f"neither a push nor a reply: {_head(raw)!r}")


def _head(raw: bytes | str, size: int = 120) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text[:size]


# ---------------------------------------------------------------------------- REST

RATE_LIMITED = {10006, 10018}  # "Too many visits!", IP rate limit


class BybitRestError(TcpDashboardError):
    """A REST reply whose ``retCode`` is not 0 (``{"retCode":10001,"retMsg":"params error: ..."}``)."""

    def __init__(self, code: int | str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"Bybit REST error {code}: {message}")


def _result(raw: bytes | str, what: str) -> Any:
    """The ``result`` of a v5 REST body; a rate limit is a :class:`TemporaryError`, another error code a
    :class:`BybitRestError`."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise MalformedMessageError("bad_rest_body", f"{what}: {exc}; body starts {_head(raw)!r}") from None
    if not isinstance(body, dict) or "retCode" not in body:
        raise MalformedMessageError("bad_rest_body", f"{what}: no retCode in {_head(raw)!r}")
    if body["retCode"] != 0:
        if body["retCode"] in RATE_LIMITED:
            raise TemporaryError(f"Bybit REST {what} rate limited: {str(body.get('retMsg'))[:200]}")
        raise BybitRestError(body["retCode"], str(body.get("retMsg"))[:200])
    return body.get("result")


def parse_klines(raw: bytes | str, symbol: str, server_ms: int | None = None) -> list[Candle]:
    """1m candles of a ``/v5/market/kline`` body, oldest first (Bybit sends newest first): rows ``[start, open,
    high, low, close, volume, turnover]``. Bybit includes the forming minute; with ``server_ms`` given, a row
    whose minute is not over is left out. Bybit klines carry no trade count and no taker-buy volume (0)."""
    result = _result(raw, "kline")
    candles = []
    try:
        for row in result["list"]:
            start = int(row[0])
            if server_ms is not None and start + 60_000 > server_ms:
                continue
            candles.append(Candle(EXCHANGE, symbol, Timeframe.M1, start, float(row[1]), float(row[2]),
                                  float(row[3]), float(row[4]), float(row[5]), float(row[6])))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MalformedMessageError("bad_candle_row", f"kline: {exc!r}; body starts {_head(raw)!r}") from None
    candles.sort(key=lambda c: c.open_time_ms)
    return candles


def parse_server_time(raw: bytes | str) -> int:
    result = _result(raw, "time")
    try:
        return int(result["timeNano"]) // 1_000_000
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedMessageError("bad_rest_body", f"time: {exc!r}; body starts {_head(raw)!r}") from None


@dataclass(frozen=True, slots=True)
class RestTrade:
    ts_ms: int
    price: float
    size: float
    side: Side


def parse_recent_trades(raw: bytes | str) -> list[RestTrade]:
    """A ``/v5/market/recent-trade`` body (``list`` newest first: ``price``, ``size``, ``side``, ``time``),
    oldest first."""
    result = _result(raw, "recent-trade")
    try:
        rows = [RestTrade(int(r["time"]), float(r["price"]), float(r["size"]),
                          Side.BUY if r["side"] == "Buy" else Side.SELL) for r in result["list"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedMessageError("bad_rest_body", f"recent-trade: {exc!r}; body starts {_head(raw)!r}") from None
    rows.reverse()
    return rows


def parse_instruments(raw: bytes | str, kind: Kind) -> list[str]:
    """Our names of the markets an ``instruments-info`` body lists as ``Trading`` (linear: perpetuals only, as
    ``BASE-QUOTE-SWAP``; dated futures are left out)."""
    result = _result(raw, "instruments-info")
    try:
        rows = [r for r in result["list"] if r.get("status", "Trading") == "Trading"]
        if kind is Kind.LINEAR:
            return [f"{r['baseCoin']}-{r['quoteCoin']}-SWAP" for r in rows
                    if r.get("contractType", "LinearPerpetual") == "LinearPerpetual"]
        return [f"{r['baseCoin']}-{r['quoteCoin']}" for r in rows]
    except (TypeError, KeyError, AttributeError) as exc:
        raise MalformedMessageError("bad_rest_body", f"instruments-info: {exc!r}; body starts {_head(raw)!r}") from None
