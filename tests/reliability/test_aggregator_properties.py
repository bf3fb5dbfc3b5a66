"""Property-based: the candle engine gives the candles of an independent aggregation whatever the
order in which the same trades arrive (inside the 2 s grace the engine promises) and however often
they are repeated."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from config.domain import DEFAULT_TIMEFRAMES, Candle, Side, Trade
from data.engine import DEFAULT_GRACE_MS, CandleEngine
from data.replay.tape import Tape
from tests.data.builders import assert_candles_match, expected_candles

SYMBOL = "BTC-USDT"
START = 1_767_225_000_000  # 2025-12-31 23:50 UTC: the minutes cross an hour and a day boundary
MINUTE = 60_000


@st.composite
def trades(draw: st.DrawFn) -> list[Trade]:
    """Up to 200 trades over up to 12 minutes (some minutes empty), many of them within seconds of a
    minute's end where arrival order matters most; ids in time order."""
    minutes = draw(st.integers(1, 12))
    anywhere = st.integers(0, minutes * MINUTE - 1)
    near_an_end = st.builds(lambda m, d: max(0, m * MINUTE + d), st.integers(1, minutes), st.integers(-4_000, 3_999))
    times = sorted(min(t, minutes * MINUTE - 1) for t in draw(st.lists(anywhere | near_an_end, min_size=1,
                                                                     max_size=200)))
    out = []
    for i, offset in enumerate(times):
        price = draw(st.integers(1, 10_000)) / 4  # exact in binary: sums and extremes compare exactly
        size = draw(st.integers(1, 1_000)) / 8
        out.append(Trade("okx", SYMBOL, 5_000_000 + i, START + offset, price, size,
                         draw(st.sampled_from([Side.BUY, Side.SELL])), START + offset))
    return out


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Trade], list[Trade]]:
    """(the trades, an arrival order): each trade delayed by up to the grace (so it may arrive after
    trades of the next minute), and any trades repeated any number of times later on."""
    original = draw(trades())
    delays = draw(st.lists(st.integers(0, DEFAULT_GRACE_MS - 1), min_size=len(original), max_size=len(original)))
    tie_breaks = draw(st.permutations(range(len(original))))
    order = sorted(range(len(original)), key=lambda i: (original[i].ts_ms + delays[i], tie_breaks[i]))
    arrival = [original[i] for i in order]
    for _ in range(draw(st.integers(0, 30))):
        picked = draw(st.integers(0, len(arrival) - 1))
        position = draw(st.integers(picked + 1, len(arrival)))
        arrival.insert(position, arrival[picked])
    return original, arrival


def final_candles(arrival: list[Trade]) -> list[Candle]:
    """Feed the engine one trade at a time; the last version of each candle wins (revisions replace)."""
    engine = CandleEngine([SYMBOL], DEFAULT_TIMEFRAMES)
    latest: dict[tuple[str, int], Candle] = {}
    for trade in arrival:
        engine.on_trade(trade)
        for candle in engine.drain().closed:
            latest[(candle.timeframe.value, candle.open_time_ms)] = candle
    engine.on_clock(arrival[-1].ts_ms + 3 * 86_400_000)  # a quiet market: the clock closes everything
    for candle in engine.drain().closed:
        latest[(candle.timeframe.value, candle.open_time_ms)] = candle
    return [latest[k] for k in sorted(latest, key=lambda k: (k[0], k[1]))]


def as_tape(original: list[Trade]) -> Tape:
    return Tape(trade_id=np.array([t.trade_id for t in original], dtype=np.int64),
                ts_ms=np.array([t.ts_ms for t in original], dtype=np.int64),
                price=np.array([t.price for t in original]), size=np.array([t.size for t in original]),
                is_buy=np.array([t.side is Side.BUY for t in original]))


@settings(max_examples=300, deadline=None)
@given(deliveries())
def test_any_arrival_order_within_the_grace_and_any_repeats_give_the_same_candles(
        case: tuple[list[Trade], list[Trade]]) -> None:
    original, arrival = case
    candles = final_candles(arrival)
    tape = as_tape(original)
    for tf in DEFAULT_TIMEFRAMES:
        assert_candles_match([c for c in candles if c.timeframe is tf], expected_candles(tape, tf))
