"""Run Alembic migrations programmatically (``python main.py db upgrade|downgrade|current``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from database.engine import make_engine

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


MIGRATION_LOCK = 7_243_001  # the PostgreSQL advisory lock every process takes while it migrates


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate to ``revision``. On PostgreSQL, processes starting together (a collector per venue, the bots,
    the dashboard) migrate one at a time: each holds an advisory lock meanwhile, and the later ones find the
    schema already current."""
    if not url.startswith("postgresql"):
        command.upgrade(alembic_config(url), revision)
        return
    from sqlalchemy import text

    engine = make_engine(url)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(url), revision)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            from sqlalchemy import text

            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return row[0] if row else None
    finally:
        engine.dispose()
