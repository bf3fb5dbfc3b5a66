"""Alembic migrations go up and down on PostgreSQL and SQLite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from database.engine import make_engine
from database.migrate import current_revision, downgrade, upgrade
from database.models import Base
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_TABLES = {
    "instruments", "trades", "candles", "bots", "signals", "orders", "fills", "positions",
    "equity_snapshots", "bot_events", "strategy_runs", "strategy_signals", "backtest_trades",
    "system_events", "component_health", "api_credentials", "book_snapshots", "funding_rates", "open_interest",
    "liquidations",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _check_up_down(url: str) -> None:
    upgrade(url)
    assert current_revision(url) is not None
    assert _tables(url) == EXPECTED_TABLES == {t.name for t in Base.metadata.sorted_tables}
    downgrade(url, "base")
    assert current_revision(url) is None
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == EXPECTED_TABLES


def test_migrations_go_up_and_down_on_sqlite(tmp_path: Path) -> None:
    _check_up_down(f"sqlite:///{tmp_path / 'm.db'}")


def test_migrations_go_up_and_down_on_postgresql() -> None:
    url = create_pg_database("tcp_migr")
    try:
        _check_up_down(url)
    finally:
        drop_pg_database(url)


def test_candles_table_has_the_documented_columns_and_key(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        insp = inspect(engine)
        columns = [c["name"] for c in insp.get_columns("candles")]
        pk = insp.get_pk_constraint("candles")["constrained_columns"]
    finally:
        engine.dispose()
    for name in ("exchange", "symbol", "timeframe", "open_time", "open", "high", "low", "close", "volume",
                 "trade_count"):
        assert name in columns
    assert pk == ["exchange", "symbol", "timeframe", "open_time"]


def test_models_match_the_migrated_schema(pg_url: str) -> None:
    """Autogenerate finds nothing to do: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_plain_alembic_command_upgrades_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"DATABASE_URL": url, "PATH": str(Path(sys.executable).parent)}
    alembic = str(Path(sys.executable).parent / "alembic")
    subprocess.run([alembic, "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert _tables(url) == EXPECTED_TABLES
    subprocess.run([alembic, "downgrade", "base"], cwd=ROOT, env=env, check=True, capture_output=True)
    assert _tables(url) == set()


def test_main_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'main.db'}"
    result = subprocess.run([sys.executable, "main.py", "db", "upgrade"], cwd=ROOT,
                            env={"DATABASE_URL": url}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()
    assert f"revision {head}" in result.stdout
    assert _tables(url) == EXPECTED_TABLES


def test_raw_trades_keep_one_btree_and_a_brin_time_index(pg_clean: str) -> None:
    """The insert path maintains the primary key only; the retention delete uses a BRIN on ts."""
    engine = make_engine(pg_clean)
    with engine.connect() as conn:
        indexes = dict(conn.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'trades'")).all())
        conn.execute(text("SET enable_seqscan = off"))  # an empty table: ask whether the index can serve
        plan = "\n".join(r[0] for r in conn.execute(text(
            "EXPLAIN DELETE FROM trades WHERE ts < now() - interval '7 days'")))
    engine.dispose()
    assert set(indexes) == {"pk_trades", "ix_trades_ts"}
    assert "USING brin (ts)" in indexes["ix_trades_ts"]
    assert "ix_trades_ts" in plan


def _migrate(url: str) -> None:
    upgrade(url)


def test_processes_starting_together_migrate_one_at_a_time() -> None:
    """Four processes (say two collectors, the bots and the dashboard) migrating one fresh PostgreSQL database at
    once all succeed (without the advisory lock, Alembic's version table is created twice and all but one fail)."""
    import multiprocessing

    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database("tcp_migrate_race")
    try:
        processes = [multiprocessing.get_context("spawn").Process(target=_migrate, args=(url,)) for _ in range(4)]
        for p in processes:
            p.start()
        for p in processes:
            p.join(120)
        assert [p.exitcode for p in processes] == [0, 0, 0, 0]
        from database.migrate import alembic_config

        assert current_revision(url) == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    finally:
        drop_pg_database(url)
