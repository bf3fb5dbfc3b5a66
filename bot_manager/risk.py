"""Risk rules (pure): position sizing, entry checks, and the per-candle checks of an open account.

Per bot (``risk`` in the bot file): stop-loss / take-profit / trailing stop (executed by the
PaperBroker inside the candle), max exposure, max stacked entries, daily loss limit, max drawdown
kill switch, cooldown after a stop-out. Across bots: :class:`PortfolioGuard` (summed drawdown and
exposure). The backtester uses the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from bot_manager.broker import Fill
from bot_manager.config import AtrSizing, BotConfig, EquityFractionSizing, FixedQuoteSizing, PortfolioConfig
from config.domain import SignalType

DAY_MS = 86_400_000
STOP_OUT_REASONS = frozenset({"stop_loss", "trailing_stop"})


class Intent(StrEnum):
    NONE = "none"
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"
    REVERSE_TO_LONG = "reverse_to_long"  # close the short, then enter long (same next open)
    REVERSE_TO_SHORT = "reverse_to_short"  # close the long, then enter short (same next open)


def intent_for(signal: SignalType, position_side: int, allow_short: bool) -> Intent:
    """What a signal asks for given the position.

    Flat: BUY enters long; SELL enters short when shorts are allowed (else nothing). Against the
    position: with shorts allowed the bot stops and reverses (SELL while long closes the long and
    enters short, BUY while short the mirror); a long-only bot only exits. A BUY while long (SELL
    while short) asks to add an entry.
    """
    if signal is SignalType.BUY:
        if position_side < 0:
            return Intent.REVERSE_TO_LONG if allow_short else Intent.EXIT
        return Intent.ENTER_LONG
    if signal is SignalType.SELL:
        if position_side > 0:
            return Intent.REVERSE_TO_SHORT if allow_short else Intent.EXIT
        return Intent.ENTER_SHORT if allow_short else Intent.NONE
    return Intent.NONE


def average_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> float | None:
    """Wilder's ATR at the last bar (None while fewer than ``period + 1`` bars)."""
    if len(close) <= period:
        return None
    prev = close[:-1]
    tr = np.maximum(high[1:], prev) - np.minimum(low[1:], prev)
    value = float(tr[:period].mean())
    for x in tr[period:]:
        value += (float(x) - value) / period
    return value


def order_quantity(config: BotConfig, equity: float, price: float, atr: float | None) -> float:
    """Base-currency size of a new entry before any cap (0.0 when it cannot be sized)."""
    sizing = config.sizing
    if price <= 0 or equity <= 0:
        return 0.0
    if isinstance(sizing, FixedQuoteSizing):
        return float(sizing.amount) / price
    if isinstance(sizing, EquityFractionSizing):
        return equity * sizing.fraction_pct / 100 / price
    assert isinstance(sizing, AtrSizing)
    if atr is None or atr <= 0:
        return 0.0
    return equity * sizing.risk_pct / 100 / (sizing.atr_multiple * atr)


def exposure_room(config: BotConfig, equity: float, exposure: float) -> float:
    """Quote notional a new entry may still add under ``max_exposure_pct`` and the leverage cap."""
    cap = equity * min(config.risk.max_exposure_pct / 100, config.leverage)
    return max(0.0, cap - exposure)


@dataclass(slots=True)
class RiskState:
    """What the per-candle checks remember; stored with the bot (JSON)."""

    peak_equity: float
    day: int = -1
    day_start_equity: float = 0.0
    day_blocked: bool = False
    cooldown_until_ms: int = -1  # entries blocked on candles with open_time <= this

    def to_dict(self) -> dict[str, Any]:
        # every field is a scalar, so a shallow dict is a copy (dataclasses.asdict deep-copies: 30 µs)
        return {name: getattr(self, name) for name in _RISK_STATE_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskState:
        return cls(**data)


_RISK_STATE_FIELDS = tuple(f.name for f in fields(RiskState))


@dataclass(frozen=True, slots=True)
class RiskAlert:
    """A rule fired on a candle. ``halt`` = kill switch (close everything, stop the bot)."""

    rule: str
    message: str
    halt: bool


class RiskManager:
    """The per-bot rules that run on every candle and before every entry."""

    def __init__(self, config: BotConfig, state: RiskState | None = None) -> None:
        self.config = config
        self.risk = config.risk
        self.timeframe_ms = config.timeframe.ms
        self.state = state or RiskState(peak_equity=float(config.starting_balance))

    def on_fills(self, candle_time_ms: int, fills: Sequence[Fill]) -> list[RiskAlert]:
        """Start the cooldown when a stop-out happened during this candle."""
        if self.risk.cooldown_candles and any(f.reason in STOP_OUT_REASONS for f in fills):
            self.state.cooldown_until_ms = candle_time_ms + self.risk.cooldown_candles * self.timeframe_ms
            return [RiskAlert("cooldown", f"stopped out; no entries for {self.risk.cooldown_candles} candles",
                              False)]
        return []

    def on_candle(self, candle_time_ms: int, equity_before: float, equity: float) -> list[RiskAlert]:
        """Checks at the close of a candle (``equity_before`` = equity at the previous close)."""
        state = self.state
        alerts: list[RiskAlert] = []
        day = candle_time_ms // DAY_MS
        if day != state.day:
            state.day, state.day_start_equity, state.day_blocked = day, equity_before, False
        state.peak_equity = max(state.peak_equity, equity)
        limit = self.risk.max_drawdown_pct
        drawdown = 1 - equity / state.peak_equity if state.peak_equity > 0 else 0.0
        if limit is not None and _pct(drawdown) >= limit:
            alerts.append(RiskAlert("max_drawdown", f"kill switch: drawdown {drawdown * 100:.2f}% reached the "
                                    f"{limit}% limit (equity {equity:.2f}, peak {state.peak_equity:.2f})", True))
            return alerts
        daily = self.risk.daily_loss_limit_pct
        if daily is not None and not state.day_blocked and state.day_start_equity > 0:
            loss = 1 - equity / state.day_start_equity
            if _pct(loss) >= daily:
                state.day_blocked = True
                alerts.append(RiskAlert("daily_loss_limit", f"daily loss {loss * 100:.2f}% reached the {daily}% "
                                        f"limit (equity {equity:.2f}, day start {state.day_start_equity:.2f}); "
                                        "position closed, no entries until the next UTC day", False))
        return alerts

    def entry_block(self, candle_time_ms: int, entries: int) -> str | None:
        """Why a new entry on this candle is not allowed (None = allowed)."""
        if self.state.day_blocked:
            return "daily loss limit reached today"
        if candle_time_ms <= self.state.cooldown_until_ms:
            return "cooldown after a stop-out"
        if entries >= self.risk.max_open_positions:
            return f"max open positions ({self.risk.max_open_positions}) reached"
        return None

    def reset_peak(self, equity: float) -> None:
        """After an operator resumes a halted bot, measure drawdown from here."""
        self.state.peak_equity = equity


class PortfolioGuard:
    """Caps across all bots: summed drawdown (halts every bot) and summed exposure (limits entries)."""

    def __init__(self, config: PortfolioConfig, peak_equity: float = 0.0) -> None:
        self.config = config
        self.peak_equity = peak_equity
        self.equity: dict[str, float] = {}
        self.exposure: dict[str, float] = {}

    def add(self, bot: str, equity: float, exposure: float) -> None:
        """A bot joins: the peak grows by its equity, so joining never looks like a drawdown."""
        self.forget(bot)
        self.peak_equity += equity
        self.update(bot, equity, exposure)

    def update(self, bot: str, equity: float, exposure: float) -> None:
        self.equity[bot] = equity
        self.exposure[bot] = exposure

    def forget(self, bot: str) -> None:
        """A bot leaves: its equity leaves the peak too."""
        self.peak_equity = max(0.0, self.peak_equity - self.equity.pop(bot, 0.0))
        self.exposure.pop(bot, None)

    def check_drawdown(self) -> str | None:
        """A message when the summed equity fell ``max_drawdown_pct`` below its peak (kill switch)."""
        total = sum(self.equity.values())
        self.peak_equity = max(self.peak_equity, total)
        limit = self.config.max_drawdown_pct
        if limit is None or self.peak_equity <= 0:
            return None
        drawdown = 1 - total / self.peak_equity
        if _pct(drawdown) >= limit:
            return (f"portfolio kill switch: summed drawdown {drawdown * 100:.2f}% reached the {limit}% limit "
                    f"(equity {total:.2f}, peak {self.peak_equity:.2f})")
        return None

    def room(self, closing: str | None = None) -> float:
        """Quote notional all bots together may still add (infinite without a cap); ``closing`` names
        a bot whose position is being closed (a reversal), so its exposure does not count."""
        limit = self.config.max_exposure_pct
        if limit is None:
            return float("inf")
        held = sum(self.exposure.values()) - (self.exposure.get(closing, 0.0) if closing is not None else 0.0)
        return max(0.0, sum(self.equity.values()) * limit / 100 - held)


def _pct(fraction: float) -> float:
    """A fraction in percent, rounded to 1e-9 so that exactly 20% is not 19.999999999999996%."""
    return round(fraction * 100, 9)


def quantize_down(value: float, lot: Decimal) -> Decimal:
    """``value`` rounded down to a whole number of ``lot``."""
    if value <= 0:
        return Decimal(0)
    return (Decimal(repr(value)) // lot) * lot
