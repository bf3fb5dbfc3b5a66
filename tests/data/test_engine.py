"""The candle engine (pure): real tapes aggregate exactly like an independent pandas groupby."""

from __future__ import annotations

import random

import pytest

from config.domain import DEFAULT_TIMEFRAMES, Candle, Side, Timeframe, Trade
from data.engine import CandleEngine
from tests.data.builders import DAY_TAPE, SYMBOL, assert_candles_match, expected_candles, load, tape_trades

M = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 3_600_000  # an hour boundary


def trade(trade_id: int, ts_ms: int, price: float = 100.0, size: float = 1.0, side: Side = Side.BUY) -> Trade:
    return Trade("okx", SYMBOL, trade_id, ts_ms, price, size, side, ts_ms)


def closed(engine: CandleEngine, timeframe: Timeframe | None = None) -> list[Candle]:
    out = engine.drain().closed
    return [c for c in out if timeframe is None or c.timeframe == timeframe]


def run_all(trades: list[Trade], timeframes: tuple[Timeframe, ...] = DEFAULT_TIMEFRAMES) -> list[Candle]:
    engine = CandleEngine([SYMBOL], timeframes)
    for t in trades:
        engine.on_trade(t)
    engine.on_clock(trades[-1].ts_ms + 2 * 86_400_000)  # a quiet market: the clock closes everything
    return engine.drain().closed


def test_a_real_tape_gives_the_candles_of_an_independent_aggregation_in_every_timeframe() -> None:
    tape = load(DAY_TAPE)
    out = run_all(tape_trades(tape))
    for tf in DEFAULT_TIMEFRAMES:
        assert_candles_match([c for c in out if c.timeframe == tf], expected_candles(tape, tf))


def test_arrival_order_inside_a_minute_does_not_change_the_candles() -> None:
    tape = load()
    trades = tape_trades(tape)
    rng = random.Random(3)
    by_minute: dict[int, list[Trade]] = {}
    for t in trades:
        by_minute.setdefault(t.ts_ms // M, []).append(t)
    shuffled = []
    for minute in sorted(by_minute):
        group = by_minute[minute]
        rng.shuffle(group)
        shuffled.extend(group)
    got, want = run_all(shuffled), run_all(trades)
    assert [(c.timeframe, c.open_time_ms, c.open, c.high, c.low, c.close, c.trade_count) for c in got] == [
        (c.timeframe, c.open_time_ms, c.open, c.high, c.low, c.close, c.trade_count) for c in want]
    assert [c.volume for c in got] == pytest.approx([c.volume for c in want], rel=1e-12)


def test_duplicate_trades_are_ignored() -> None:
    trades = tape_trades(load())
    engine = CandleEngine([SYMBOL])
    for t in trades[:1500] + trades[1400:1500] + trades[1500:]:  # a reconnect re-sends 100 trades
        engine.on_trade(t)
    engine.on_clock(trades[-1].ts_ms + 86_400_000 * 2)
    assert engine.drain().closed == run_all(trades)
    assert engine.stats(SYMBOL).duplicates == 100


def test_minutes_without_trades_have_no_candle() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5))
    for i, ts in enumerate([T0 + 1_000, T0 + 3 * M + 5, T0 + 7 * M]):
        engine.on_trade(trade(i + 1, ts, price=100.0 + i))
    ones = closed(engine, Timeframe.M1)
    assert [c.open_time_ms for c in ones] == [T0, T0 + 3 * M]


def test_a_minute_closes_on_the_first_trade_of_a_later_minute() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5))
    engine.on_trade(trade(1, T0 + 10, price=10.0))
    engine.on_trade(trade(2, T0 + 20, price=12.0))
    assert closed(engine) == []
    engine.on_trade(trade(3, T0 + 5 * M, price=11.0))
    out = closed(engine)
    assert [(c.timeframe, c.open_time_ms, c.open, c.close, c.trade_count) for c in out] == [
        (Timeframe.M1, T0, 10.0, 12.0, 2), (Timeframe.M5, T0, 10.0, 12.0, 2)]


def test_the_clock_closes_a_quiet_minute_only_after_the_grace() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1,), grace_ms=2_000)
    t = trade(1, T0 + 59_000)
    engine.on_trades(SYMBOL, [_wire(t)], received_ms=5_000_000)  # received at local time 5 000 000
    engine.on_clock(5_000_000 + 1_000 + 1_999)  # exchange time = 59 000 + 2 999 < end + grace
    assert closed(engine) == []
    engine.on_clock(5_000_000 + 3_000)
    assert [c.open_time_ms for c in closed(engine)] == [T0]


def test_a_late_trade_inside_the_grace_revises_the_minute_and_its_higher_buckets() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5), grace_ms=2_000)
    engine.on_trade(trade(1, T0 + 4 * M + 1_000, price=10.0))
    engine.on_trade(trade(3, T0 + 5 * M + 500, price=11.0))  # closes 1m@4 and the 5m bucket
    first = closed(engine)
    engine.on_trade(trade(2, T0 + 4 * M + 59_000, price=15.0, size=2.0))  # late by 1.5 s
    revised = closed(engine)
    assert [(c.timeframe, c.open_time_ms) for c in first] == [(Timeframe.M1, T0 + 4 * M), (Timeframe.M5, T0)]
    assert [(c.timeframe, c.open_time_ms, c.high, c.close, c.volume, c.trade_count) for c in revised] == [
        (Timeframe.M1, T0 + 4 * M, 15.0, 15.0, 3.0, 2), (Timeframe.M5, T0, 15.0, 15.0, 3.0, 2)]
    assert engine.stats(SYMBOL).late_revisions == 1


def test_a_trade_later_than_the_grace_is_dropped_and_counted() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1,), grace_ms=2_000)
    engine.on_trade(trade(1, T0 + 1_000))
    engine.on_trade(trade(3, T0 + M + 2_500))
    closed(engine)
    engine.on_trade(trade(2, T0 + 30_000))
    assert closed(engine) == []
    assert engine.stats(SYMBOL).late_dropped == 1


def test_forming_candles_come_from_the_clock_tick_only_when_something_changed() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.H1))
    engine.on_trade(trade(1, T0 + 1_000, price=10.0))
    engine.on_trade(trade(2, T0 + M + 1_000, price=12.0))
    updates = engine.on_clock(T0 + M + 1_100)
    assert [(c.timeframe, c.open_time_ms, c.open, c.close, c.closed) for c in updates] == [
        (Timeframe.M1, T0 + M, 12.0, 12.0, False), (Timeframe.H1, T0, 10.0, 12.0, False)]
    assert engine.on_clock(T0 + M + 1_200) == []


def test_a_reconnect_repairs_the_gap_from_rest_and_keeps_every_channel_in_order() -> None:
    tape = load()
    trades = tape_trades(tape)
    expected_1m = run_all(trades, (Timeframe.M1,))
    rest = {c.open_time_ms: c for c in expected_1m}  # what a REST backfill would return
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5))
    cut, resume = 800, 1900  # the stream drops after trade 800 and comes back at trade 1900
    for t in trades[:cut]:
        engine.on_trade(t)
    before = engine.drain().closed
    engine.on_disconnected(SYMBOL)
    engine.on_connected(SYMBOL)
    for t in trades[resume:]:
        engine.on_trade(t)
    (request,) = engine.drain().repairs
    assert request.live_minute_ms == trades[resume].ts_ms // M * M
    last_closed_minute = [c for c in before if c.timeframe == Timeframe.M1][-1].open_time_ms
    assert request.start_ms == last_closed_minute + M  # the minute forming at the cut comes from REST too
    held = engine.drain().closed
    assert held == []  # live minutes wait for the repair
    assert engine.repair_ready(request)
    fetched = [c for t, c in rest.items() if request.start_ms <= t < request.end_ms]
    assert engine.apply_repair(request, fetched)
    engine.on_clock(trades[-1].ts_ms + 86_400_000)
    after = engine.drain().closed
    ones = [c for c in before + after if c.timeframe == Timeframe.M1]
    fives = [c for c in before + after if c.timeframe == Timeframe.M5]
    assert [c.open_time_ms for c in ones] == sorted(rest)
    assert [(c.open, c.high, c.low, c.close, c.volume) for c in ones] == [
        (c.open, c.high, c.low, c.close, c.volume) for c in expected_1m]
    assert_candles_match(fives, expected_candles(tape, Timeframe.M5), counts=False)
    # What closed before the stream's first minute came from REST: marked for the bus (a new bot
    # does not trade it); the first live minute and everything after it was seen live.
    live_from = request.live_minute_ms
    assert not any(c.backfilled for c in before)
    assert [c.close_time_ms <= live_from for c in after] == [c.backfilled for c in after]
    assert any(c.backfilled for c in after)
    assert sum(c.backfilled for c in after) < len(after)


def test_a_superseded_repair_is_ignored() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1,))
    engine.on_connected(SYMBOL)
    engine.on_trade(trade(1, T0 + 1_000))
    (first,) = engine.drain().repairs
    engine.on_connected(SYMBOL)
    engine.on_trade(trade(2, T0 + 3 * M))
    (second,) = engine.drain().repairs
    assert second.start_ms is None and second.live_minute_ms == T0 + 3 * M
    assert not engine.apply_repair(first, [])
    assert engine.apply_repair(second, [])


def _wire(t: Trade):  # type: ignore[no-untyped-def]
    from data.okx.frames import WireTrade

    return WireTrade(tradeId=t.trade_id, px=t.price, sz=t.size, side=t.side, ts=t.ts_ms)


def test_a_late_trade_for_a_minute_that_had_none_creates_it_and_its_higher_buckets() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5, Timeframe.H1), grace_ms=2_000)
    engine.on_trade(trade(1, T0 + 10 * M + 1_000, price=10.0))  # 00:10
    engine.on_trade(trade(3, T0 + 60 * M + 500, price=11.0))  # 01:00:00.5 closes 00:10, 5m@10 and 1h@0
    first = closed(engine)
    engine.on_trade(trade(2, T0 + 59 * M + 59_000, price=12.0))  # 00:59:59 arrives 1.5 s late
    late = closed(engine)
    assert [(c.timeframe, c.open_time_ms) for c in first] == [
        (Timeframe.M1, T0 + 10 * M), (Timeframe.M5, T0 + 10 * M), (Timeframe.H1, T0)]
    assert [(c.timeframe, c.open_time_ms, c.close, c.trade_count) for c in late] == [
        (Timeframe.M1, T0 + 59 * M, 12.0, 1), (Timeframe.M5, T0 + 55 * M, 12.0, 1), (Timeframe.H1, T0, 12.0, 2)]


def test_the_first_minute_of_a_stream_may_arrive_late() -> None:
    engine = CandleEngine([SYMBOL], (Timeframe.M1, Timeframe.M5))
    engine.on_trade(trade(2, T0 + M + 500, price=11.0))
    engine.on_trade(trade(1, T0 + 59_999, price=10.0))  # 1.5 ms of exchange time late
    engine.on_clock(T0 + 10 * M)
    out = closed(engine)
    assert [(c.timeframe, c.open_time_ms, c.open, c.close, c.trade_count) for c in out] == [
        (Timeframe.M1, T0, 10.0, 10.0, 1), (Timeframe.M1, T0 + M, 11.0, 11.0, 1), (Timeframe.M5, T0, 10.0, 11.0, 2)]
