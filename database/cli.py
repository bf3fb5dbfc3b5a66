"""``python main.py db upgrade|downgrade|current|prune-trades``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from config.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    db = subparsers.add_parser("db", help="database schema migrations and maintenance")
    sub = db.add_subparsers(dest="db_command", required=True)
    up = sub.add_parser("upgrade", help="apply Alembic migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=_upgrade)
    down = sub.add_parser("downgrade", help="revert migrations (default: to base, i.e. drop everything)")
    down.add_argument("revision", nargs="?", default="base")
    down.set_defaults(func=_downgrade)
    cur = sub.add_parser("current", help="print the applied revision")
    cur.set_defaults(func=_current)
    prune = sub.add_parser("prune-trades", help="delete raw trades older than TRADE_RETENTION_DAYS")
    prune.set_defaults(func=_prune)


def _upgrade(args: argparse.Namespace) -> int:
    from database.migrate import current_revision, upgrade

    url = get_settings().effective_database_url
    upgrade(url, args.revision)
    print(f"database at revision {current_revision(url)}")
    return 0


def _downgrade(args: argparse.Namespace) -> int:
    from database.migrate import current_revision, downgrade

    url = get_settings().effective_database_url
    downgrade(url, args.revision)
    print(f"database at revision {current_revision(url)}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from database.migrate import current_revision

    print(current_revision(get_settings().effective_database_url) or "<empty>")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from database.engine import make_engine, make_session_factory, session_scope
    from database.repositories.market import prune_trades, retention_cutoff

    settings = get_settings()
    engine = make_engine(settings.effective_database_url)
    cutoff = retention_cutoff(datetime.now(UTC), settings.trade_retention_days)
    with session_scope(make_session_factory(engine)) as session:
        deleted = prune_trades(session, cutoff)
    engine.dispose()
    print(f"deleted {deleted} raw trades older than {cutoff.isoformat()}")
    return 0
