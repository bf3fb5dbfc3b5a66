"""Invalid values in the dashboard's forms (the callback bodies, on the real PostgreSQL): each answer
names the field, and nothing is queued or created. A valid form next to them proves the check can
see a queued run or a created bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot_manager.service import BotService
from config.settings import load_settings
from dashboard.context import DashboardContext
from dashboard.live import LiveCandleCache
from dashboard.pages.backtests import submit
from dashboard.pages.bots import create_bot
from database.engine import make_engine, make_session_factory

GOOD_FORM: dict[str, Any] = {"strategy": "sma_cross", "params": '{"fast": 5, "slow": 20}', "market": "okx|BTC-USDT",
                             "timeframe": "1m", "start": "2026-01-01", "end": "2026-01-02", "fee_pct": 0.1,
                             "slippage_bps": 2.0, "size_pct": 100.0, "cash": 10_000.0}
BAD_FORMS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    # name: (changed values, words the error must show)
    "negative_cash": ({"cash": -5.0}, ("cash",)),
    "infinite_cash": ({"cash": float("inf")}, ("cash",)),
    "fee_of_500_pct": ({"fee_pct": 500.0}, ("fee",)),
    "size_of_zero": ({"size_pct": 0.0}, ("size",)),
    "negative_slippage": ({"slippage_bps": -3.0}, ("slippage",)),
    "end_before_start": ({"start": "2026-01-05", "end": "2026-01-01"}, ("end", "start")),
    "impossible_date": ({"start": "2026-13-45"}, ("start",)),
    "unknown_strategy": ({"strategy": "nope"}, ("strategy", "nope")),
    "parameter_of_the_wrong_type": ({"params": '{"fast": "x", "slow": 20}'}, ("fast",)),
    "misspelt_parameter": ({"params": '{"fsat": 5}'}, ("fsat", "fast")),
    "parameters_not_json": ({"params": "{fast: 5"}, ("parameters", "JSON")),
    "no_market": ({"market": None}, ("market",)),
    "unknown_timeframe": ({"timeframe": "7m"}, ("timeframe",)),
}
GOOD_BOT = ('{"name": "good_bot", "symbol": "BTC-USDT", "strategy": "sma_cross", "starting_balance": 1000, '
            '"sizing": {"method": "fixed_quote", "amount": 10}}')
BAD_BOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "broken_json": ('{"name": "x", ', ("JSON",)),
    "not_an_object": ("[1, 2]", ("object",)),
    "misspelt_key": (GOOD_BOT.replace('"sizing"', '"sizeing"'), ("sizeing", "sizing")),
    "negative_balance": (GOOD_BOT.replace("1000", "-1000"), ("starting_balance",)),
    "leverage_of_100": (GOOD_BOT.replace("}}", '}, "leverage": 100}'), ("leverage",)),
    "unknown_strategy": (GOOD_BOT.replace("sma_cross", "nope"), ("nope",)),
    "bad_name": (GOOD_BOT.replace("good_bot", "good bot"), ("name",)),
}


@pytest.fixture
def context(pg_clean: str) -> Iterator[DashboardContext]:
    engine = make_engine(pg_clean)
    context = DashboardContext(load_settings({"DATABASE_URL": pg_clean}), make_session_factory(engine),
                               LiveCandleCache(), backtest_workers=0)
    yield context
    context.close()
    engine.dispose()


def text_of(component: Any) -> str:
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(text_of(c) for c in component)
    children = getattr(component, "children", None)
    return "" if children is None else text_of(children)


def form(values: dict[str, Any]) -> tuple[Any, ...]:
    v = {**GOOD_FORM, **values}
    return (v["strategy"], v["params"], v["market"], v["timeframe"], v["start"], v["end"], v["fee_pct"],
            v["slippage_bps"], v["size_pct"], v["cash"])


def runs(context: DashboardContext) -> int:
    return len(context.backtests().list_runs(limit=1000))


@pytest.mark.parametrize("name", list(BAD_FORMS))
def test_an_invalid_backtest_form_names_the_field_and_queues_nothing(name: str, context: DashboardContext) -> None:
    changes, words = BAD_FORMS[name]
    feedback, run_id = submit(context, False, form(changes), None, None)
    text = text_of(feedback)
    assert run_id is None and runs(context) == 0, text
    for word in words:
        assert word in text, text
    assert submit(context, False, form({}), None, None)[1] is not None and runs(context) == 1  # the control


def test_an_invalid_optimisation_grid_names_the_grid_and_queues_nothing(context: DashboardContext) -> None:
    feedback, run_id = submit(context, True, form({}), '{"fast": 5}', "sharpe")
    assert run_id is None and runs(context) == 0 and "grid" in text_of(feedback)


@pytest.mark.parametrize("name", list(BAD_BOTS))
def test_an_invalid_bot_in_the_editor_names_the_field_and_creates_nothing(name: str, context: DashboardContext) -> None:
    text, words = BAD_BOTS[name]
    invalid, feedback, created = create_bot(context, text, True)
    shown = text_of(feedback)
    assert invalid and created is None and BotService(context.session_factory).list_bots() == [], shown
    for word in words:
        assert word in shown, shown
    assert create_bot(context, GOOD_BOT, False)[2] == "good_bot"  # the control


def test_charging_funding_needs_stored_funding_and_then_queues_a_funding_run(context: DashboardContext) -> None:
    """The form's funding box: without stored funding rates for the market it names ``funding`` and queues
    nothing; once the collector has stored some, the queued run charges them (``funding_db``)."""
    from backtesting.service import spec_of
    from config.domain import FundingRate
    from database.models import StrategyRun
    from database.repositories.derivatives import add_derivatives

    feedback, run_id = submit(context, False, (*form({}), True), None, None)
    assert run_id is None and runs(context) == 0
    assert "funding" in text_of(feedback) and "no funding rates stored for okx BTC-USDT" in text_of(feedback)
    with context.session() as session:
        add_derivatives(session, [FundingRate("okx", "BTC-USDT", "BTC-USDT", 1_767_254_000_000, 0.0001,
                                              1_767_254_400_000)])
    _, run_id = submit(context, False, (*form({}), True), None, None)
    assert run_id is not None
    with context.session() as session:
        assert spec_of(session.get(StrategyRun, run_id)).funding_db is True
    _, plain = submit(context, False, (*form({}), False), None, None)
    with context.session() as session:
        assert spec_of(session.get(StrategyRun, plain)).funding_db is False
