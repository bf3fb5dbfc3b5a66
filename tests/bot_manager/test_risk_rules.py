"""Each risk rule blocks or closes as specified (the bot's pure core, driven bar by bar)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from bot_manager.config import PortfolioConfig, parse_bot_config
from bot_manager.engine import BotEngine, CandleOutcome
from bot_manager.risk import DAY_MS, Intent, PortfolioGuard, intent_for
from config.domain import Signal, SignalType
from strategies.bars import Bars
from strategies.base import BaseStrategy
from tests.bot_manager.builders import bot_config

MIN = 60_000
DAY0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class Scripted(BaseStrategy):
    """A test strategy: the signal for each bar open time comes from ``script``."""

    name: ClassVar[str] = "scripted"

    def __init__(self, script: dict[int, Any]) -> None:
        super().__init__()
        self.script = script

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        t = int(candles["open_time"].iloc[-1])
        if self.script.get(t) == "fail":
            raise RuntimeError("division by zero in user code")
        return Signal(self.script.get(t, SignalType.HOLD), 0.5, "scripted", float(candles["close"].iloc[-1]), t)


class Bot:
    """A BotEngine plus the bars it has seen; ``bar(...)`` feeds one candle."""

    def __init__(self, script: dict[int, SignalType] | None = None, **overrides: Any) -> None:
        config = parse_bot_config(bot_config(**overrides), check_strategy=False)
        self.script: dict[int, Any] = script if script is not None else {}
        self.engine = BotEngine(config, Scripted(self.script))
        self.rows: list[tuple[int, float, float, float, float, float]] = []
        self.t = DAY0

    def bar(self, o: float, h: float, l: float, c: float, signal: Any = None,  # noqa: E741
            portfolio: PortfolioGuard | None = None) -> CandleOutcome:
        if signal is not None:
            self.script[self.t] = signal
        self.rows.append((self.t, o, h, l, c, 1.0))
        data = np.array(self.rows, dtype=np.float64)
        bars = Bars(data[:, 0].astype(np.int64), data[:, 1], data[:, 2], data[:, 3], data[:, 4], data[:, 5])
        outcome = self.engine.process(self.t, o, h, l, c, 1.0, bars, portfolio)
        self.t += MIN
        return outcome

    def flat(self, price: float, n: int = 1, signal: Any = None) -> CandleOutcome:
        outcome = self.bar(price, price, price, price, signal)
        for _ in range(n - 1):
            outcome = self.bar(price, price, price, price)
        return outcome


BUY, SELL = SignalType.BUY, SignalType.SELL
NO_COSTS = {"fees": {"maker_pct": 0, "taker_pct": 0}, "slippage": {"model": "fixed", "bps": 0}}


def kinds(outcome: CandleOutcome) -> list[str]:
    return [e.kind for e in outcome.events]


def test_the_stop_loss_closes_the_position_at_the_stop_inside_the_candle() -> None:
    bot = Bot(**NO_COSTS, risk={"stop_loss_pct": 2})
    bot.flat(100, signal=BUY)
    [entry] = bot.flat(100).fills
    [stop] = bot.bar(100, 101, 97, 99).fills
    assert (entry.price, stop.reason, stop.price) == (Decimal("100"), "stop_loss", Decimal("98"))
    assert bot.engine.broker.position_side == 0


def test_the_take_profit_closes_the_position_at_the_target() -> None:
    bot = Bot(**NO_COSTS, risk={"take_profit_pct": 3})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    [exit_fill] = bot.bar(100, 104, 99.5, 101).fills
    assert (exit_fill.reason, exit_fill.price) == ("take_profit", Decimal("103"))


def test_the_trailing_stop_closes_after_the_price_gives_back_from_its_best() -> None:
    bot = Bot(**NO_COSTS, risk={"trailing_stop_pct": 5})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    assert not bot.bar(100, 120, 100, 119).fills  # best price 120 -> stop 114
    [exit_fill] = bot.bar(119, 119, 113, 115).fills
    assert (exit_fill.reason, exit_fill.price) == ("trailing_stop", Decimal("114"))


def test_a_stop_out_starts_a_cooldown_that_blocks_entries_for_the_configured_candles() -> None:
    bot = Bot(**NO_COSTS, risk={"stop_loss_pct": 1, "cooldown_candles": 2})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    stopped = bot.bar(100, 100, 98, 99, signal=BUY)  # stopped out, and a BUY on the same candle
    assert "cooldown" in kinds(stopped) and "entry_blocked" in kinds(stopped) and not stopped.submitted
    assert not bot.flat(99, signal=BUY).submitted
    assert not bot.flat(99, signal=BUY).submitted
    assert [o.side for o in bot.flat(99, signal=BUY).submitted] == ["buy"]


def test_max_exposure_reduces_an_entry_to_the_share_of_equity_allowed() -> None:
    bot = Bot(**NO_COSTS, sizing={"method": "equity_fraction", "fraction_pct": 100},
              risk={"max_exposure_pct": 50})
    outcome = bot.flat(100, signal=BUY)
    [order] = outcome.submitted
    assert order.quantity == Decimal("50.00000")  # 50% of 10 000 at 100
    assert "entry_reduced" in kinds(outcome)


def test_max_open_positions_blocks_a_further_entry_into_the_same_direction() -> None:
    bot = Bot(**NO_COSTS, risk={"max_open_positions": 2})
    bot.flat(100, signal=BUY)
    assert [o.order_id for o in bot.flat(100, signal=BUY).submitted] == [f"test_bot-{DAY0 + MIN}-add1"]
    third = bot.flat(100, signal=BUY)
    assert not third.submitted and "max open positions (2)" in third.events[0].message
    assert bot.engine.broker.entries == 2


def test_the_daily_loss_limit_closes_the_position_and_blocks_entries_until_the_next_utc_day() -> None:
    bot = Bot(**NO_COSTS, sizing={"method": "fixed_quote", "amount": 5000}, risk={"daily_loss_limit_pct": 2})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    hit = bot.flat(95)  # 50 units x -5 = -250 = -2.5% of the day's 10 000
    assert "daily_loss_limit" in kinds(hit) and [o.reason for o in hit.submitted] == ["daily_loss_limit"]
    bot.flat(95)  # the close fills
    assert bot.engine.broker.position_side == 0
    blocked = bot.flat(95, signal=BUY)
    assert not blocked.submitted and "daily loss limit" in blocked.events[0].message
    minutes_left = (DAY0 + DAY_MS - bot.t) // MIN
    bot.flat(95, n=int(minutes_left))
    assert bot.t == DAY0 + DAY_MS
    assert [o.side for o in bot.flat(95, signal=BUY).submitted] == ["buy"]


def test_the_max_drawdown_kill_switch_closes_everything_halts_and_says_why() -> None:
    bot = Bot(**NO_COSTS, sizing={"method": "equity_fraction", "fraction_pct": 100},
              risk={"max_drawdown_pct": 10, "max_exposure_pct": 100})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    killed = bot.flat(85)  # ~99.9 units: -15% equity
    assert killed.halted_reason is not None and "drawdown" in killed.halted_reason and "10" in killed.halted_reason
    assert [o.reason for o in killed.submitted] == ["kill_switch"] and not bot.engine.trading
    assert [e.kind for e in killed.events] == ["halted"]
    [closed] = bot.flat(85, signal=BUY).fills
    assert closed.reason == "kill_switch" and bot.engine.broker.position_side == 0
    assert not bot.flat(90, signal=BUY).submitted  # halted: signals are not acted on


def test_a_long_only_bot_ignores_sell_when_flat_and_a_long_short_bot_enters_short() -> None:
    assert not Bot(**NO_COSTS).flat(100, signal=SELL).submitted
    short = Bot(**NO_COSTS, direction="long_short").flat(100, signal=SELL)
    assert [o.side for o in short.submitted] == ["sell"]


def test_an_entry_below_the_minimum_order_size_is_skipped() -> None:
    bot = Bot(**NO_COSTS, sizing={"method": "fixed_quote", "amount": 4}, min_order_quote=5)
    outcome = bot.flat(100, signal=BUY)
    assert not outcome.submitted and "below the minimum" in outcome.events[0].message


def test_the_portfolio_exposure_cap_limits_entries_across_bots() -> None:
    guard = PortfolioGuard(PortfolioConfig(max_exposure_pct=30))
    first = Bot(**NO_COSTS, name="a", sizing={"method": "fixed_quote", "amount": 5000}, risk={"max_exposure_pct": 100})
    second = Bot(**NO_COSTS, name="b", sizing={"method": "fixed_quote", "amount": 5000}, risk={"max_exposure_pct": 100})
    guard.add("a", 10_000, 0)
    guard.add("b", 10_000, 0)
    first.bar(100, 100, 100, 100, BUY, guard)
    first.flat(100)
    guard.update("a", first.engine.broker.equity(), first.engine.broker.exposure())
    outcome = second.bar(100, 100, 100, 100, BUY, guard)
    [order] = outcome.submitted
    assert order.quantity == Decimal("10")  # 30% of 20 000 = 6 000 cap, 5 000 used by "a"
    assert "entry_reduced" in kinds(outcome)


def test_the_portfolio_drawdown_check_fires_on_the_summed_equity() -> None:
    guard = PortfolioGuard(PortfolioConfig(max_drawdown_pct=20))
    guard.add("a", 10_000, 0)
    guard.add("b", 10_000, 0)
    assert guard.check_drawdown() is None
    guard.update("a", 6_500, 0)  # -17.5% in total
    assert guard.check_drawdown() is None
    guard.update("b", 9_500, 0)  # -20%
    message = guard.check_drawdown()
    assert message is not None and "20.00%" in message
    guard.forget("b")  # a bot leaving is not a drawdown of the rest
    assert guard.peak_equity == pytest.approx(10_500)


def test_a_failing_strategy_halts_only_its_own_bot_and_says_why() -> None:
    failing, healthy = Bot(**NO_COSTS, name="failing"), Bot(**NO_COSTS, name="healthy")
    outcome = failing.flat(100, signal="fail")
    assert outcome.halted_reason is not None and "division by zero in user code" in outcome.halted_reason
    assert [e.kind for e in outcome.events] == ["strategy_error"] and not failing.engine.trading
    assert not failing.flat(100, signal=BUY).submitted
    assert [o.side for o in healthy.flat(100, signal=BUY).submitted] == ["buy"]


# ---------------------------------------------------------------------------------- stop and reverse

COSTS = {"fees": {"maker_pct": 0.08, "taker_pct": 0.1}, "slippage": {"model": "fixed", "bps": 0}}


@pytest.mark.parametrize(("signal", "position", "allow_short", "intent"), [
    (BUY, 0, False, Intent.ENTER_LONG), (BUY, 1, False, Intent.ENTER_LONG),  # from flat; add (if allowed)
    (SELL, 0, False, Intent.NONE), (SELL, 1, False, Intent.EXIT),  # long-only: a SELL only exits
    (SELL, 0, True, Intent.ENTER_SHORT), (SELL, -1, True, Intent.ENTER_SHORT),
    (SELL, 1, True, Intent.REVERSE_TO_SHORT), (BUY, -1, True, Intent.REVERSE_TO_LONG),
    (SignalType.HOLD, 1, True, Intent.NONE),
])
def test_a_signal_against_the_position_reverses_only_when_shorts_are_allowed(
        signal: SignalType, position: int, allow_short: bool, intent: Intent) -> None:
    assert intent_for(signal, position, allow_short) is intent


def orders(outcome: CandleOutcome) -> list[tuple[str, str, Decimal, bool]]:
    return [(o.order_id, o.side.value, o.quantity, o.reduce_only) for o in outcome.submitted]


def test_a_long_short_bot_stops_and_reverses_with_two_fills_and_a_fee_on_each() -> None:
    bot = Bot(**COSTS, direction="long_short")  # 1000 USDT per entry, lot 0.00001, tick 0.1
    bot.flat(100, signal=BUY)
    t1 = bot.t
    reverse = bot.flat(100, signal=SELL)  # the BUY fills: 10 @ 100, fee 1.00; then SELL while long
    assert orders(reverse) == [(f"test_bot-{t1}-exit", "sell", Decimal("10"), True),
                               (f"test_bot-{t1}-entry", "sell", Decimal("10.00000"), False)]  # 1000 / 100
    t2 = bot.t
    exit_fill, entry_fill = bot.flat(110, signal=BUY).fills  # both at the next open, in that order
    # exit: 10 @ 110 = 1100, fee 1.10, realised 1100 - 1000 = 100; entry: 10 @ 110 = 1100, fee 1.10
    assert (exit_fill.reason, exit_fill.realised_pnl, exit_fill.fee, exit_fill.position_after) == (
        "signal SELL", Decimal("100"), Decimal("1.1"), Decimal(0))
    assert (entry_fill.price, entry_fill.fee, entry_fill.position_after) == (Decimal("110"), Decimal("1.1"),
                                                                             Decimal("-10"))
    assert entry_fill.balance_after == Decimal("10096.80")  # 10000 - 1.00 + 100 - 1.10 - 1.10
    # The BUY at 110 while short is the mirror: close the short, buy 1000 / 110 = 9.09090 (lot 0.00001).
    assert [(o.order_id, o.side.value, o.quantity) for o in bot.engine.broker.open_orders] == [
        (f"test_bot-{t2}-exit", "buy", Decimal("10")), (f"test_bot-{t2}-entry", "buy", Decimal("9.09090"))]
    exit_fill, entry_fill = bot.flat(105).fills
    # exit: 10 @ 105 = 1050, fee 1.05, realised 1100 - 1050 = 50; entry: 9.0909 @ 105 = 954.5445, fee 0.9545445
    assert (exit_fill.realised_pnl, exit_fill.fee, entry_fill.fee) == (Decimal("50"), Decimal("1.05"),
                                                                         Decimal("0.9545445"))
    broker = bot.engine.broker
    assert broker.quantity == Decimal("9.09090") and broker.cost == Decimal("954.5445")
    assert broker.balance == Decimal("10144.7954555")  # 10096.80 + 50 - 1.05 - 0.9545445


def test_a_long_only_bot_only_exits_on_a_sell_while_long() -> None:
    bot = Bot(**COSTS)
    bot.flat(100, signal=BUY)
    t1 = bot.t
    assert orders(bot.flat(100, signal=SELL)) == [(f"test_bot-{t1}-exit", "sell", Decimal("10"), True)]
    assert [f.position_after for f in bot.flat(110).fills] == [Decimal(0)]


def test_a_reversal_entry_is_sized_as_a_new_position_under_the_exposure_cap() -> None:
    bot = Bot(**NO_COSTS, direction="long_short", sizing={"method": "equity_fraction", "fraction_pct": 100},
              risk={"max_exposure_pct": 50})
    bot.flat(100, signal=BUY)  # 50% of 10 000 at 100 = 50 units
    outcome = bot.flat(100, signal=SELL)
    # The long being closed does not count: room 50% of 10 000 = 5000, not 5000 - 5000 = 0.
    assert [o.quantity for o in outcome.submitted] == [Decimal("50"), Decimal("50.00000")]
    assert "entry_reduced" in kinds(outcome)


def test_the_portfolio_cap_gates_a_reversal_entry_without_counting_the_position_it_closes() -> None:
    guard = PortfolioGuard(PortfolioConfig(max_exposure_pct=30))  # 30% of 20 000 = 6000 for both bots
    a = Bot(**NO_COSTS, name="a", direction="long_short", risk={"max_exposure_pct": 100})
    b = Bot(**NO_COSTS, name="b", sizing={"method": "fixed_quote", "amount": 5500}, risk={"max_exposure_pct": 100})
    guard.add("a", 10_000, 0)
    guard.add("b", 10_000, 0)
    b.bar(100, 100, 100, 100, BUY, guard)
    b.flat(100)
    guard.update("b", 10_000, 5_500)
    a.bar(100, 100, 100, 100, BUY, guard)  # room 6000 - 5500 = 500: the 1000 entry is cut to 5 units
    a.flat(100)
    guard.update("a", 10_000, 500)
    outcome = a.bar(100, 100, 100, 100, SELL, guard)
    # room 6000 - (500 + 5500) + 500 (a's long is being closed) = 500: 5 units, not blocked at 0
    assert [o.quantity for o in outcome.submitted] == [Decimal("5"), Decimal("5.00000")]
    assert "entry_reduced" in kinds(outcome)


def test_a_reversal_whose_entry_is_blocked_by_a_risk_rule_still_exits() -> None:
    bot = Bot(**NO_COSTS, direction="long_short")
    bot.flat(100, signal=BUY)
    bot.flat(100)
    bot.engine.risk.state.cooldown_until_ms = bot.t  # e.g. a cooldown restored with the bot's state
    outcome = bot.flat(100, signal=SELL)
    assert [o.reduce_only for o in outcome.submitted] == [True]
    assert "position closed, reversal entry) ignored: cooldown after a stop-out" in outcome.events[0].message


def test_a_sell_on_the_candle_that_hits_the_daily_loss_limit_closes_without_reversing() -> None:
    bot = Bot(**NO_COSTS, direction="long_short", sizing={"method": "fixed_quote", "amount": 5000},
              risk={"daily_loss_limit_pct": 2})
    bot.flat(100, signal=BUY)
    bot.flat(100)
    hit = bot.flat(95, signal=SELL)  # 50 units x -5 = -2.5% of the day
    assert [o.reason for o in hit.submitted] == ["daily_loss_limit"]
    bot.flat(95)
    assert bot.engine.broker.position_side == 0
    assert not bot.flat(95, signal=SELL).submitted  # no entry the other way either, until the next day
