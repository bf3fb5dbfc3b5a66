"""The signal engine's pure core: candles in, exactly the vectorised signals out, once each."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from bot_manager.signal_engine import SignalEngine, bars_from_candles
from config.domain import Candle, Signal, SignalEvent, SignalType, Timeframe
from config.errors import ConfigurationError
from strategies.base import BaseStrategy, Param
from strategies.registry import create_strategy
from tests.strategies.candles import FIVE_MINUTES, ONE_MINUTE, frame_to_candles, load_candles

M1 = Timeframe.M1


class _FailsAfter(BaseStrategy):
    """HOLD until it has seen ``rows`` candles, then raises."""

    name: ClassVar[str] = "fails_after"
    params_spec: ClassVar[dict[str, Param]] = {"rows": Param(int, 50, min=1)}

    def generate_signal(self, candles: pd.DataFrame) -> Signal:
        if len(candles) >= self.params["rows"]:  # type: ignore[operator]
            raise ZeroDivisionError("boom")
        return Signal.hold()


def _expected(strategy: BaseStrategy, frame: pd.DataFrame, source: str, first_row: int = 0) -> list[tuple]:
    codes = strategy.generate_signals(frame)
    kinds = {1: SignalType.BUY, -1: SignalType.SELL}
    return [(source, int(frame["open_time"].iloc[i]), kinds[int(codes[i])])
            for i in np.flatnonzero(codes) if i >= first_row]


def _keys(events: list[SignalEvent]) -> list[tuple]:
    return [(e.source, e.candle_time_ms, e.signal_type) for e in events]


def test_instances_on_one_market_emit_exactly_the_vectorised_signals_in_candle_order() -> None:
    frame = load_candles(ONE_MINUTE)
    strategies = {
        "bot:trend": create_strategy("sma_cross", {"fast": 50, "slow": 200}),
        "bot:fast": create_strategy("ema_cross"),
        "watch:rsi": create_strategy("rsi_reversion"),
        "watch:macd": create_strategy("macd_cross"),
    }
    engine = SignalEngine()
    for source, strategy in strategies.items():
        engine.add_instance(source, strategy, "okx", "BTC-USDT-SWAP", "1m")
    events = [e for c in frame_to_candles(frame, M1) for e in engine.on_candle(c)]
    expected = sorted((k for s, st in strategies.items() for k in _expected(st, frame, s)), key=lambda k: k[1])
    assert sorted(_keys(events), key=lambda k: k[1]) == expected
    assert len(expected) > 200
    first = events[0]
    assert first.exchange == "okx" and first.symbol == "BTC-USDT-SWAP" and first.timeframe is M1
    assert first.params == strategies[first.source].params and first.strategy == strategies[first.source].name
    assert first.price == float(frame.loc[frame["open_time"] == first.candle_time_ms, "close"].iloc[0])


def test_a_window_seeded_from_stored_candles_continues_exactly_like_the_full_history() -> None:
    frame = load_candles(FIVE_MINUTES)
    candles = frame_to_candles(frame, Timeframe.M5)
    strategy = create_strategy("bollinger", {"mode": "breakout"})
    engine = SignalEngine()
    engine.add_instance("bot:bb", strategy, "okx", "BTC-USDT-SWAP", Timeframe.M5)
    ((market, rows),) = engine.warmup_needed()
    assert market == ("okx", "BTC-USDT-SWAP", Timeframe.M5) and rows == strategy.history + 288
    engine.seed(*market, bars_from_candles(candles[2000 - rows: 2000]))
    events = [e for c in candles[2000:] for e in engine.on_candle(c)]
    assert _keys(events) == _expected(strategy, frame, "bot:bb", first_row=2000)
    assert engine.warmup_needed() == []


def test_a_candle_delivered_twice_produces_its_signal_once() -> None:
    frame = load_candles(ONE_MINUTE).iloc[:1200]
    engine = SignalEngine()
    engine.add_instance("s", create_strategy("sma_cross"), "okx", "BTC-USDT-SWAP", M1)
    events = []
    for candle in frame_to_candles(frame, M1):
        events += engine.on_candle(candle)
        events += engine.on_candle(candle)
    keys = _keys(events)
    assert len(keys) == len(set(keys)) > 10


def test_a_revised_last_candle_that_changes_the_verdict_is_corrected_and_an_older_one_is_not_reemitted() -> None:
    # sma_cross 2/3 on 10 10 10 10 13: BUY on the 13 (see tests/strategies/test_builtin_rules.py).
    closes = [10.0, 10.0, 10.0, 10.0, 13.0]
    candles = [Candle("okx", "X", M1, 60_000 * i, c, c, c, c, 1.0) for i, c in enumerate(closes)]
    engine = SignalEngine()
    engine.add_instance("s", create_strategy("sma_cross", {"fast": 2, "slow": 3}), "okx", "X", M1)
    assert [e for c in candles[:4] for e in engine.on_candle(c)] == []
    (buy,) = engine.on_candle(candles[4])
    assert buy.signal_type is SignalType.BUY
    assert engine.on_candle(replace(candles[4], high=13.5)) == []  # same verdict: nothing new
    flat = replace(candles[4], open=10.0, high=10.0, low=10.0, close=10.0)
    (correction,) = engine.on_candle(flat)  # the late revision removes the cross
    assert (correction.candle_time_ms, correction.signal_type) == (buy.candle_time_ms, SignalType.HOLD)
    assert engine.on_candle(replace(candles[2], close=10.0)) == []  # an older bar: window updated only
    assert engine.on_candle(replace(candles[3], open_time_ms=30_000)) == []  # never seen: ignored


def test_a_strategy_that_raises_is_isolated_and_the_others_keep_running() -> None:
    frame = load_candles(ONE_MINUTE).iloc[:1500]
    good = create_strategy("sma_cross")
    engine = SignalEngine()
    engine.add_instance("bot:bad", _FailsAfter(rows=50), "okx", "BTC-USDT-SWAP", M1)
    engine.add_instance("bot:good", good, "okx", "BTC-USDT-SWAP", M1)
    events = [e for c in frame_to_candles(frame, M1) for e in engine.on_candle(c)]
    assert _keys(events) == _expected(good, frame, "bot:good")
    status = {s.source: s for s in engine.statuses()}
    assert status["bot:good"].state == "running" and status["bot:good"].evaluated == 1500
    bad = status["bot:bad"]
    assert bad.state == "failed" and bad.evaluated == 49
    assert "'fails_after' failed on candle 2026-01-01T00:49:00+00:00" in (bad.error or "")
    assert "ZeroDivisionError: boom" in (bad.error or "")


def test_hold_is_published_only_at_the_configured_sampling() -> None:
    frame = load_candles(ONE_MINUTE).iloc[:200]
    engine = SignalEngine(hold_every=50)
    engine.add_instance("s", create_strategy("sma_cross", {"fast": 5, "slow": 100}), "okx", "BTC-USDT-SWAP", M1)
    events = [e for c in frame_to_candles(frame, M1) for e in engine.on_candle(c)]
    holds = [e.candle_time_ms for e in events if e.signal_type is SignalType.HOLD]
    assert holds == [int(frame["open_time"].iloc[i]) for i in (49, 99, 149, 199)]


def test_instances_are_named_uniquely_and_can_be_removed() -> None:
    engine = SignalEngine()
    engine.add_instance("bot:a", create_strategy("sma_cross"), "okx", "BTC-USDT-SWAP", M1)
    with pytest.raises(ConfigurationError, match="'bot:a' is already registered"):
        engine.add_instance("bot:a", create_strategy("ema_cross"), "okx", "ETH-USDT", M1)
    engine.add_instance("bot:b", create_strategy("ema_cross"), "okx", "ETH-USDT", Timeframe.M5)
    assert sorted(engine.markets()) == [("okx", "BTC-USDT-SWAP", M1), ("okx", "ETH-USDT", Timeframe.M5)]
    engine.remove_instance("bot:a")
    engine.remove_instance("never-added")
    assert engine.markets() == [("okx", "ETH-USDT", Timeframe.M5)]
    candle = frame_to_candles(load_candles(ONE_MINUTE).iloc[:1], M1)[0]
    assert engine.on_candle(candle) == []  # no instance left on that market


def test_a_strategy_needing_more_history_asks_for_a_new_warmup_of_its_market() -> None:
    engine = SignalEngine()
    engine.add_instance("a", create_strategy("sma_cross"), "okx", "X", M1)
    engine.seed("okx", "X", M1, bars_from_candles([]))
    assert engine.warmup_needed() == []
    engine.add_instance("b", create_strategy("sma_cross", {"fast": 50, "slow": 200}), "okx", "X", M1)
    assert engine.warmup_needed() == [(("okx", "X", M1), 2010 + 1440)]


def test_forming_candles_are_not_evaluated() -> None:
    engine = SignalEngine(hold_every=1)
    engine.add_instance("s", create_strategy("sma_cross", {"fast": 2, "slow": 3}), "okx", "X", M1)
    assert engine.on_candle(Candle("okx", "X", M1, 0, 1, 1, 1, 1, 1, closed=False)) == []
    assert len(engine.on_candle(Candle("okx", "X", M1, 0, 1, 1, 1, 1, 1))) == 1
