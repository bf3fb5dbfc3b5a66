"""Operations: component health reports and system events (what the System page shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from database.models import ComponentHealth, SystemEvent, utc_now


def _dialect(session: Session | Connection) -> str:
    conn = session.connection() if isinstance(session, Session) else session
    return conn.dialect.name


def record_health(session: Session, component: str, status: str, data: dict[str, Any] | None = None,
                  at: datetime | None = None) -> None:
    """Replace the health report of ``component`` (e.g. ``collector.okx.BTC-USDT``)."""
    values = {"component": component, "status": status, "data": data or {}, "updated_at": at or utc_now()}
    ins = pg_insert(ComponentHealth) if _dialect(session) == "postgresql" else sqlite_insert(ComponentHealth)
    session.execute(ins.values(values).on_conflict_do_update(
        index_elements=["component"],
        set_={"status": ins.excluded.status, "data": ins.excluded.data, "updated_at": ins.excluded.updated_at},
    ))


def list_health(session: Session, prefix: str | None = None) -> list[ComponentHealth]:
    query = select(ComponentHealth).order_by(ComponentHealth.component)
    if prefix:
        query = query.where(ComponentHealth.component.startswith(prefix))
    return list(session.scalars(query))


def add_system_event(session: Session, component: str, message: str, *, level: str = "INFO",
                     kind: str = "log", data: dict[str, Any] | None = None, ts: datetime | None = None) -> None:
    """Add one system event; ``ts`` defaults to now (pass the log record's time when batching)."""
    session.add(SystemEvent(component=component, message=message, level=level, kind=kind, data=data or {},
                            ts=ts or utc_now()))


def recent_system_events(session: Session, limit: int = 100, component: str | None = None,
                         min_level: str | None = None) -> list[SystemEvent]:
    query = select(SystemEvent).order_by(SystemEvent.ts.desc(), SystemEvent.id.desc()).limit(limit)
    if component:
        query = query.where(SystemEvent.component == component)
    if min_level:
        order = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
        query = query.where(SystemEvent.level.in_(order[order.index(min_level):]))
    return list(session.scalars(query))
