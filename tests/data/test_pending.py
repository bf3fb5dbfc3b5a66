"""The rows waiting for the database (data/pending.py), on a real SQLite file: a database outage keeps them, a
bounded backlog drops the oldest and counts them, and a flush cancelled mid-write neither loses nor repeats a
row (liquidations have no unique key, so a repeated write would show)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from config.domain import Liquidation, Side
from data.pending import PendingWrites
from database.engine import make_engine, make_session_factory, session_scope
from database.models import LiquidationRow
from database.repositories.derivatives import add_derivatives


def liquidation(i: int) -> Liquidation:
    return Liquidation("okx", "BTC-USDT-SWAP", "BTC-USDT-SWAP", 1_700_000_000_000 + i, Side.SELL, 30_000.0 + i, 1.0)


def count(url: str) -> int:
    engine = make_engine(url)
    with session_scope(make_session_factory(engine)) as session:
        n = int(session.scalar(select(func.count()).select_from(LiquidationRow)) or 0)
    engine.dispose()
    return n


def test_a_cancelled_flush_finishes_and_the_next_one_writes_the_rest_once(sqlite_url: str) -> None:
    async def scenario() -> None:
        engine = make_engine(sqlite_url)
        pending: PendingWrites[Liquidation] = PendingWrites(engine, add_derivatives, "liquidations")
        pending.add([liquidation(i) for i in range(5_000)])
        task = asyncio.create_task(pending.flush())
        await asyncio.sleep(0)  # the write has started in its thread
        task.cancel()
        pending.add([liquidation(i) for i in range(5_000, 5_010)])
        await pending.flush()
        assert (pending.stored, pending.items) == (5_010, [])
        engine.dispose()
    asyncio.run(scenario())
    assert count(sqlite_url) == 5_010


def test_an_outage_keeps_the_rows_and_a_full_backlog_drops_the_oldest(tmp_path: Path, sqlite_url: str) -> None:
    async def scenario() -> None:
        broken = make_engine(f"sqlite:///{tmp_path}/missing/dir/db.sqlite")  # cannot be opened: an outage
        pending: PendingWrites[Liquidation] = PendingWrites(broken, add_derivatives, "liquidations", max_pending=100)
        pending.add([liquidation(i) for i in range(80)])
        await pending.flush()
        assert (pending.db_ok, len(pending.items), pending.stored) == (False, 80, 0)
        pending.add([liquidation(i) for i in range(80, 130)])
        assert (len(pending.items), pending.dropped) == (100, 30)
        assert pending.items[0].ts_ms == liquidation(30).ts_ms  # the oldest went
        pending._factory = make_session_factory(make_engine(sqlite_url))  # the database is back
        await pending.flush()
        assert (pending.db_ok, pending.items, pending.stored) == (True, [], 100)
        broken.dispose()
    asyncio.run(scenario())
    assert count(sqlite_url) == 100
