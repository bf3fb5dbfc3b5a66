"""Frozen, typed domain values shared by every package.

Timestamps are UTC epoch milliseconds with the unit in the name (``ts_ms``, ``open_time_ms``).
Market data is float64; balances and PnL are rounded at the points documented in
docs/paper_trading.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Side(StrEnum):
    """Taker side of a trade, or the side of an order."""

    BUY = "buy"
    SELL = "sell"


class SignalType(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    HOLD = "HOLD"


class Timeframe(StrEnum):
    """Candle timeframes, aligned to UTC."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def ms(self) -> int:
        return _TIMEFRAME_MS[self]

    @property
    def okx_bar(self) -> str:
        """OKX REST/WS bar name (UTC-aligned variant for days)."""
        return _OKX_BARS[self]

    def floor(self, ts_ms: int) -> int:
        """Start (epoch ms) of the bucket that holds ``ts_ms``."""
        return ts_ms - ts_ms % _TIMEFRAME_MS[self]

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        try:
            return cls(text)
        except ValueError:
            known = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown timeframe {text!r}; expected one of {known}") from None


_TIMEFRAME_MS: dict[Timeframe, int] = {
    Timeframe.M1: 60_000,
    Timeframe.M5: 300_000,
    Timeframe.M15: 900_000,
    Timeframe.M30: 1_800_000,
    Timeframe.H1: 3_600_000,
    Timeframe.H4: 14_400_000,
    Timeframe.D1: 86_400_000,
}
_OKX_BARS: dict[Timeframe, str] = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.M30: "30m",
    Timeframe.H1: "1H",
    Timeframe.H4: "4H",
    Timeframe.D1: "1Dutc",
}

DEFAULT_TIMEFRAMES: tuple[Timeframe, ...] = (
    Timeframe.M1,
    Timeframe.M5,
    Timeframe.M15,
    Timeframe.H1,
    Timeframe.H4,
    Timeframe.D1,
)


def ms_to_datetime(ts_ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    """Aware (or naive, taken as UTC) datetime to epoch milliseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(round(value.timestamp() * 1000))


@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade as the exchange reported it.

    ``ts_ms`` is the exchange's fill time; ``received_ms`` our receive time.
    """

    exchange: str
    symbol: str
    trade_id: int
    ts_ms: int
    price: float
    size: float
    side: Side
    received_ms: int = 0

    def __post_init__(self) -> None:
        if not (self.price > 0 and math.isfinite(self.price)):
            raise ValueError(f"trade price must be a positive finite number, got {self.price!r}")
        if not (self.size > 0 and math.isfinite(self.size)):
            raise ValueError(f"trade size must be a positive finite number, got {self.size!r}")


@dataclass(frozen=True, slots=True)
class Candle:
    """OHLCV bar; ``open_time_ms`` is the UTC start of the bucket."""

    exchange: str
    symbol: str
    timeframe: Timeframe
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float = 0.0
    buy_volume: float = 0.0
    trade_count: int = 0
    closed: bool = True
    # Built from REST history by a repair (before the collector's stream started, or a gap after a
    # reconnect), not seen live. A bus hint only: not stored, not compared.
    backfilled: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            raise ValueError(
                f"candle {self.symbol} {self.timeframe} @{self.open_time_ms}: high/low do not contain "
                f"open/close (o={self.open} h={self.high} l={self.low} c={self.close})"
            )
        if self.volume < 0:
            raise ValueError(f"candle volume must be >= 0, got {self.volume}")

    @property
    def close_time_ms(self) -> int:
        return self.open_time_ms + self.timeframe.ms

    @property
    def key(self) -> tuple[str, str, Timeframe, int]:
        return (self.exchange, self.symbol, self.timeframe, self.open_time_ms)


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's verdict on the last closed candle."""

    signal_type: SignalType
    strength: float = 0.0
    reason: str = ""
    price: float | None = None
    candle_time_ms: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"signal strength must be in [0, 1], got {self.strength}")

    @classmethod
    def hold(cls, reason: str = "", candle_time_ms: int | None = None) -> Signal:
        return cls(SignalType.HOLD, 0.0, reason, None, candle_time_ms)


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """A signal as published on the bus and stored: who said it, about which candle."""

    source: str
    strategy: str
    exchange: str
    symbol: str
    timeframe: Timeframe
    candle_time_ms: int
    signal_type: SignalType
    strength: float
    reason: str
    price: float | None
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BookTop:
    """The best ``depth`` levels of one market's book at ``ts_ms`` (what the bus carries and what is stored):
    ``bids`` high to low, ``asks`` low to high, ``(price, size)``; ``update_id``: the venue's sequence id."""

    exchange: str
    symbol: str
    ts_ms: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    update_id: int | None = None

    @property
    def mid(self) -> float | None:
        return (self.bids[0][0] + self.asks[0][0]) / 2 if self.bids and self.asks else None


@dataclass(frozen=True, slots=True)
class FundingRate:
    """The current funding rate of a perpetual: ``rate`` settles at ``funding_time_ms`` (a fraction of notional;
    > 0: longs pay shorts); ``next_rate`` is the venue's forecast for the settlement after, when it sends one."""

    exchange: str
    symbol: str
    venue_symbol: str
    ts_ms: int
    rate: float | None
    funding_time_ms: int
    next_rate: float | None = None
    mark_price: float | None = None


@dataclass(frozen=True, slots=True)
class OpenInterest:
    """Open interest: ``contracts`` in the venue's contract units, ``base`` in the base currency when sent."""

    exchange: str
    symbol: str
    venue_symbol: str
    ts_ms: int
    contracts: float
    base: float | None = None


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forced order: ``side`` is the liquidation order's (a liquidated long is a SELL), ``price`` its price
    (OKX: the bankruptcy price), ``size`` in contracts (OKX) or base currency (Binance, Bybit)."""

    exchange: str
    symbol: str
    venue_symbol: str
    ts_ms: int
    side: Side
    price: float
    size: float
