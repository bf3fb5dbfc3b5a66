"""Idempotent market-data writes on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from config.domain import Candle, Side, Timeframe, Trade
from database.engine import make_engine, make_session_factory, session_scope
from database.repositories import market


def make_candle(open_time_ms: int, close: float = 101.0, volume: float = 2.0) -> Candle:
    return Candle("okx", "BTC-USDT", Timeframe.M1, open_time_ms, 100.0, max(close, 102.0), 99.0, close,
                  volume, volume * close, volume / 2, 3)


def make_trade(trade_id: int, ts_ms: int, price: float = 100.0) -> Trade:
    return Trade("okx", "BTC-USDT", trade_id, ts_ms, price, 0.5, Side.BUY)


def test_same_trade_written_twice_is_one_row(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    trades = [make_trade(i, 1_700_000_000_000 + i) for i in range(50)]
    with session_scope(factory) as s:
        assert market.insert_trades(s, trades + trades[:10]) == 50
    with session_scope(factory) as s:
        assert market.insert_trades(s, trades) == 0
        stored = market.get_trades(s, "okx", "BTC-USDT")
    engine.dispose()
    assert stored == trades


def test_same_candle_written_twice_is_one_row_and_last_write_wins(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    t0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
    first = [make_candle(t0 + i * 60_000) for i in range(5)]
    revised = make_candle(t0 + 2 * 60_000, close=110.0, volume=9.0)
    with session_scope(factory) as s:
        market.upsert_candles(s, first)
        market.upsert_candles(s, first)
        market.upsert_candles(s, [revised])
    with session_scope(factory) as s:
        stored = market.get_candles(s, "okx", "BTC-USDT", Timeframe.M1)
        latest = market.latest_candle_time_ms(s, "okx", "BTC-USDT", Timeframe.M1)
    engine.dispose()
    assert len(stored) == 5
    assert stored[2] == revised
    assert stored[0] == first[0]
    assert latest == t0 + 4 * 60_000


def test_one_batch_holding_a_candle_twice_keeps_the_later_version(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    older, newer = make_candle(1_700_000_040_000 // 60_000 * 60_000), None
    newer = make_candle(older.open_time_ms, close=120.0)
    with session_scope(factory) as s:
        assert market.upsert_candles(s, [older, newer]) == 1
    with session_scope(factory) as s:
        assert market.get_candles(s, "okx", "BTC-USDT", Timeframe.M1) == [newer]
    engine.dispose()


def test_retention_job_deletes_only_old_raw_trades(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    old_ms = int((now - timedelta(days=8)).timestamp() * 1000)
    new_ms = int((now - timedelta(days=1)).timestamp() * 1000)
    with session_scope(factory) as s:  # the collector stores a market's candles with its trades
        market.insert_trades(s, [make_trade(1, old_ms), make_trade(2, new_ms)])
        market.upsert_candles(s, [make_candle(new_ms - new_ms % 60_000)])
    with session_scope(factory) as s:
        deleted = market.prune_trades(s, market.retention_cutoff(now, 7))
    with session_scope(factory) as s:
        left = market.get_trades(s, "okx", "BTC-USDT")
    engine.dispose()
    assert deleted == 1
    assert [t.trade_id for t in left] == [2]


# Values whose decimal text is long or unusual: a bulk path must store the same doubles.
AWKWARD = [0.1 + 0.2, 1e-9, 123_456.789_012_345_6, 5e-324, 1.25e300, 42.0]


def test_large_batches_take_the_bulk_path_and_round_trip_exactly(db_url: str) -> None:
    """More than 200 candles (the PostgreSQL COPY path): several markets and timeframes, shuffled,
    one candle twice (the later wins), times before and after 2000-01-01; then a revision batch."""
    import random

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    expected: dict[tuple[str, str, int], Candle] = {}
    batch: list[Candle] = []
    for symbol in ("BTC-USDT", "ETH-USDT", "A-USDC"):
        for timeframe in (Timeframe.M1, Timeframe.H1):
            for i in range(150):
                t = 946_684_800_000 + (i - 75) * timeframe.ms  # straddles the PostgreSQL epoch
                x = AWKWARD[i % len(AWKWARD)]
                c = Candle("okx", symbol, timeframe, t, x, x * 2 + i + 1, x / 3, x + i, i * x, x, x / 7, i)
                batch.append(c)
                expected[(symbol, timeframe.value, t)] = c
    twice = Candle("okx", "BTC-USDT", Timeframe.M1, batch[3].open_time_ms, 1.0, 2.0, 0.5, 1.5, 9.0, 13.5, 4.0, 7)
    batch.append(twice)
    expected[("BTC-USDT", "1m", twice.open_time_ms)] = twice
    random.Random(7).shuffle(batch)
    revised = [Candle(c.exchange, c.symbol, c.timeframe, c.open_time_ms, c.open, c.high + 1, c.low, c.close + 1,
                      c.volume, c.quote_volume, c.buy_volume, c.trade_count + 1) for c in batch[:250]]
    with session_scope(factory) as s:
        assert market.upsert_candles(s, batch) == 900
    with session_scope(factory) as s:
        assert market.upsert_candles(s, batch) == 900  # unchanged: stored as they were
        assert market.upsert_candles(s, revised) == len({(c.symbol, c.timeframe, c.open_time_ms) for c in revised})
    for c in revised:
        expected[(c.symbol, c.timeframe.value, c.open_time_ms)] = c
    with session_scope(factory) as s:
        stored = [c for symbol in ("A-USDC", "BTC-USDT", "ETH-USDT") for tf in (Timeframe.M1, Timeframe.H1)
                  for c in market.get_candles(s, "okx", symbol, tf)]
    engine.dispose()
    assert len(stored) == 900
    assert stored == [expected[(c.symbol, c.timeframe.value, c.open_time_ms)] for c in stored]
    assert {(c.symbol, c.timeframe.value, c.open_time_ms) for c in stored} == set(expected)


def test_large_trade_batches_round_trip_and_are_stored_once(db_url: str) -> None:
    import random

    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    rows = [("okx", symbol, 10_000 + i, 1_700_000_000_000 + i * 7, AWKWARD[i % len(AWKWARD)], 0.001 * (i + 1),
             "buy" if i % 3 else "sell") for symbol in ("ETH-USDT", "BTC-USDT") for i in range(600)]
    shuffled = rows + rows[:50]
    random.Random(3).shuffle(shuffled)
    with session_scope(factory) as s:
        assert market.insert_trade_rows(s, shuffled) == 1200
    with session_scope(factory) as s:
        assert market.insert_trade_rows(s, rows[::-1]) == 0
        stored = market.get_trades(s, "okx", "BTC-USDT") + market.get_trades(s, "okx", "ETH-USDT")
    engine.dispose()
    assert [(t.exchange, t.symbol, t.trade_id, t.ts_ms, t.price, t.size, t.side.value) for t in stored] == (
        [r for r in rows if r[1] == "BTC-USDT"] + [r for r in rows if r[1] == "ETH-USDT"])


def test_candle_arrays_newest_and_ranges_match_the_stored_candles(db_url: str) -> None:
    """The array read (what the chart uses) returns the same rows as the stored candles: the newest
    ``limit`` ascending, a half-open range, one market only, every column including trade_count."""
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    t0 = 1_700_000_040_000 - 1_700_000_040_000 % 60_000
    candles = [make_candle(t0 + i * 60_000, close=100.0 + i * 0.25, volume=1.0 + i) for i in range(300)]
    other = [Candle("okx", "ETH-USDT", Timeframe.M1, t0 + i * 60_000, 5.0, 6.0, 4.0, 5.5, 1.0) for i in range(400)]
    with session_scope(factory) as s:
        market.upsert_candles(s, candles + other)
    with session_scope(factory) as s:
        newest = market.candle_arrays(s, "okx", "BTC-USDT", Timeframe.M1, limit=50)
        middle = market.candle_arrays(s, "okx", "BTC-USDT", Timeframe.M1, t0 + 10 * 60_000, t0 + 20 * 60_000)
        none = market.candle_arrays(s, "okx", "BTC-USDT", Timeframe.M5, limit=50)
        last_two = market.get_candles(s, "okx", "BTC-USDT", Timeframe.M1, limit=2)
    engine.dispose()

    def rows(chosen: list[Candle]) -> list[tuple[object, ...]]:
        return [(c.open_time_ms, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.buy_volume,
                 c.trade_count) for c in chosen]

    assert newest.tolist() == rows(candles[-50:])
    assert middle.tolist() == rows(candles[10:20])
    assert len(none) == 0 and none.dtype == market.CANDLE_ARRAY
    assert last_two == candles[-2:]


def test_list_markets_names_every_stored_market_once_in_key_order(db_url: str) -> None:
    """The market list (a loose index scan on PostgreSQL) equals the distinct stored keys, sorted."""
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    t0 = 1_700_000_040_000 - 1_700_000_040_000 % 3_600_000
    keys = [("okx", "BTC-USDT", Timeframe.M1), ("okx", "BTC-USDT", Timeframe.H1), ("binance", "ZEC-USDT", Timeframe.M5),
            ("okx", "ETH-USDT", Timeframe.M1), ("okx", "BTC-USDT-SWAP", Timeframe.M15)]
    with session_scope(factory) as s:
        assert market.list_markets(s) == []
    with session_scope(factory) as s:
        for n, (exchange, symbol, tf) in enumerate(keys):
            market.upsert_candles(s, [Candle(exchange, symbol, tf, t0 + i * tf.ms, 5.0, 6.0, 4.0, 5.5, 1.0)
                                      for i in range(7 * (n + 1))])
    with session_scope(factory) as s:
        found = market.list_markets(s)
    engine.dispose()
    assert found == sorted((e, sym, tf.value) for e, sym, tf in keys)
