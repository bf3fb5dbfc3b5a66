"""Fixtures for the real PostgreSQL and Redis on this machine.

* ``pg_url``: a fresh PostgreSQL database for the whole run, migrated through Alembic, dropped after.
  Tests that need a clean slate use ``pg_clean`` (truncates every table).
* ``sqlite_url``: a fresh SQLite file per test, migrated through Alembic.
* ``db_url``: parametrised over both.
* ``redis_url`` + ``redis_prefix``: the real Redis, a key/channel prefix per test, cleaned after.

If PostgreSQL or Redis cannot be reached the test FAILS with a message saying so (never skips).
Override the servers with TEST_PG_ADMIN_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pg_admin_connect():  # type: ignore[no-untyped-def]
    import psycopg2

    try:
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({exc}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or point TEST_PG_ADMIN_URL at a server.",
            pytrace=False,
        )
    conn.autocommit = True
    return conn


def create_pg_database(prefix: str = "tcp_test") -> str:
    """Create an empty PostgreSQL database and return its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = _pg_admin_connect()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = _pg_admin_connect()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    from database.migrate import upgrade

    url = create_pg_database()
    upgrade(url)
    yield url
    drop_pg_database(url)


@pytest.fixture
def pg_clean(pg_url: str) -> Iterator[str]:
    """The session database with every table emptied before the test."""
    from sqlalchemy import text

    from database.engine import make_engine
    from database.models import Base

    engine = make_engine(pg_url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield pg_url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    from database.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL (both migrated, both empty)."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_clean"))


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def redis_url(redis_prefix: str) -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {REDIS_URL} ({exc}). Start it with `redis-server --daemonize yes "
            "--bind 127.0.0.1 --port 6379 --save '' --appendonly no` or point TEST_REDIS_URL at a server.",
            pytrace=False,
        )
    yield REDIS_URL
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)
    client.close()
