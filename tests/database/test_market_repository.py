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
