"""The signals repository on SQLite and PostgreSQL: idempotent writes, corrections, dashboard reads."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from config.domain import SignalEvent, SignalType, Timeframe
from database.engine import make_engine, make_session_factory, session_scope
from database.models import Bot, SignalRow
from database.repositories import bots, signals

T0 = 1_767_225_600_000
M1 = Timeframe.M1


def _event(source: str, minute: int, kind: SignalType = SignalType.BUY, symbol: str = "BTC-USDT") -> SignalEvent:
    return SignalEvent(source, "sma_cross", "okx", symbol, M1, T0 + minute * 60_000, kind, 0.5,
                       f"{kind} at {minute}", 100.0 + minute, {"fast": 10, "slow": 30})


def test_writing_a_signal_twice_keeps_one_row_and_a_correction_replaces_it(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    first = _event("bot:a", 1)
    with session_scope(factory) as s:
        assert signals.upsert_signals(s, [first, first]) == 1
    with session_scope(factory) as s:
        signals.upsert_signals(s, [first])
        signals.upsert_signals(s, [replace(first, signal_type=SignalType.HOLD, strength=0.0, reason="revised")])
    with session_scope(factory) as s:
        stored = signals.signals_in_range(s, "okx", "BTC-USDT", M1)
        rows = s.query(SignalRow).count()
    engine.dispose()
    assert rows == 1
    assert stored == [replace(first, signal_type=SignalType.HOLD, strength=0.0, reason="revised")]


def test_the_dashboard_reads_signals_by_market_range_source_and_newest_first(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    events = [_event("bot:a", 1), _event("bot:a", 2, SignalType.SELL), _event("bot:a", 3, SignalType.HOLD),
              _event("watch:b", 2), _event("bot:a", 2, symbol="ETH-USDT")]
    with session_scope(factory) as s:
        signals.upsert_signals(s, events)
    with session_scope(factory) as s:
        in_range = signals.signals_in_range(s, "okx", "BTC-USDT", M1, T0 + 60_000, T0 + 3 * 60_000)
        only_a = signals.signals_in_range(s, "okx", "BTC-USDT", M1, source="bot:a",
                                          signal_types=[SignalType.BUY, SignalType.SELL])
        recent = signals.recent_signals(s, limit=3)
        total = signals.count_signals(s, symbol="BTC-USDT")
        sources = signals.list_signal_sources(s)
    engine.dispose()
    assert [(e.source, e.candle_time_ms) for e in in_range] == [
        ("bot:a", T0 + 60_000), ("bot:a", T0 + 120_000), ("watch:b", T0 + 120_000)]
    assert [e.signal_type for e in only_a] == [SignalType.BUY, SignalType.SELL]
    assert [(e.symbol, e.candle_time_ms) for e in recent][0][1] == T0 + 120_000
    assert all(e.signal_type is not SignalType.HOLD for e in recent) and len(recent) == 3
    assert total == 4
    assert sources == [("bot:a", "sma_cross"), ("watch:b", "sma_cross")]


def test_a_bot_source_is_linked_to_its_bot_row(db_url: str) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as s:
        bots.create_bot(s, name="alpha", exchange="okx", symbol="BTC-USDT", timeframe="1m",
                        strategy="sma_cross", config={}, starting_balance=Decimal(1000))
    with session_scope(factory) as s:
        signals.upsert_signals(s, [_event("bot:alpha", 1), _event("bot:ghost", 1), _event("watch:x", 1)])
    with session_scope(factory) as s:
        links = {r.source: r.bot_id for r in s.query(SignalRow)}
        bot_id = s.query(Bot).one().id
    engine.dispose()
    assert links == {"bot:alpha": bot_id, "bot:ghost": None, "watch:x": None}
