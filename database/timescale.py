"""TimescaleDB support: used when the extension is available on the PostgreSQL server.

``enable_timescale`` is called by the initial migration. On SQLite or on PostgreSQL without the
extension it does nothing and returns ``False``: the plain tables keep their time indexes and
:func:`database.repositories.market.prune_trades` deletes old raw trades instead.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text

from config.settings import load_settings

log = logging.getLogger(__name__)


def timescale_available(bind: Connection) -> bool:
    if bind.dialect.name != "postgresql":
        return False
    row = bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    return row is not None


def enable_timescale(bind: Connection, retention_days: int | None = None) -> bool:
    """Turn ``candles`` and ``trades`` into hypertables; add a retention policy on ``trades``."""
    if not timescale_available(bind):
        log.info("timescaledb extension not available: plain tables with time indexes")
        return False
    days = retention_days or load_settings().trade_retention_days
    bind.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    # A hypertable's unique keys must contain the time column: widen the trades key with ts.
    bind.execute(text("ALTER TABLE trades DROP CONSTRAINT pk_trades"))
    bind.execute(text("ALTER TABLE trades ADD CONSTRAINT pk_trades PRIMARY KEY (exchange, symbol, trade_id, ts)"))
    bind.execute(text("SELECT create_hypertable('candles', 'open_time', migrate_data => true, "
                      "chunk_time_interval => INTERVAL '7 days')"))
    bind.execute(text("SELECT create_hypertable('trades', 'ts', migrate_data => true, "
                      "chunk_time_interval => INTERVAL '1 day')"))
    bind.execute(text("SELECT add_retention_policy('trades', make_interval(days => :days))"), {"days": days})
    log.info("timescaledb: candles and trades are hypertables, trades kept %d days", days)
    return True


def uses_timescale(bind: Connection) -> bool:
    """True when ``trades`` is already a hypertable (retention then belongs to TimescaleDB)."""
    if bind.dialect.name != "postgresql":
        return False
    try:
        row = bind.execute(text(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'trades'"
        )).first()
    except Exception:  # noqa: BLE001 - the schema only exists with the extension
        return False
    return row is not None
