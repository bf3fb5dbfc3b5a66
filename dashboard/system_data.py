"""Reads behind the System page: component health rows, storage checks, process figures."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.domain import Timeframe, datetime_to_ms
from database.repositories.market import latest_candle_time_ms, list_markets
from database.repositories.ops import list_health, recent_system_events

COLLECTOR_PREFIX = "collector."
STALE_AFTER_S = 60.0
# Health fields of ``collector.<exchange>.<symbol>`` rows shown as columns, with their headings.
COLLECTOR_FIELDS = (
    ("state", "connection"), ("last_trade_ms", "last trade"), ("trades_per_s", "trades/s"),
    ("connection_frames_per_s", "msgs/s"), ("reconnects", "reconnects"), ("gaps_backfilled", "gaps backfilled"),
    ("unrepaired_minutes", "unrepaired min"), ("malformed_frames", "malformed frames"),
    ("late_revisions", "late revisions"),
)
_SECRET_WORDS = ("password", "secret", "token", "key", "credential", "passphrase")


@dataclass(frozen=True, slots=True)
class HealthRow:
    component: str
    status: str
    age_s: float
    data: dict[str, Any]

    @property
    def stale(self) -> bool:
        return self.age_s > STALE_AFTER_S


def health_rows(session: Session, now: datetime | None = None) -> list[HealthRow]:
    """Every component's latest report, with secrets masked and its age in seconds."""
    now = now or datetime.now(UTC)
    rows = []
    for row in list_health(session):
        updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        rows.append(HealthRow(row.component, row.status, max(0.0, (now - updated).total_seconds()),
                              mask_secrets(dict(row.data or {}))))
    return rows


def mask_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` where any value under a secret-looking key is replaced by ``"***"``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if any(word in key.lower() for word in _SECRET_WORDS):
            out[key] = "***"
        elif isinstance(value, dict):
            out[key] = mask_secrets(value)
        else:
            out[key] = value
    return out


def split_collectors(rows: list[HealthRow]) -> tuple[list[HealthRow], list[HealthRow]]:
    """(collector rows ``collector.<exchange>.<symbol>``, every other component)."""
    collectors = [r for r in rows if r.component.startswith(COLLECTOR_PREFIX)]
    return collectors, [r for r in rows if not r.component.startswith(COLLECTOR_PREFIX)]


@dataclass(frozen=True, slots=True)
class StorageStatus:
    database_ok: bool
    database_ms: float | None
    database_error: str | None
    newest_candle_age_s: float | None
    redis_configured: bool
    redis_ok: bool | None
    redis_ms: float | None
    redis_error: str | None


def check_database(session: Session) -> tuple[bool, float | None, str | None, float | None]:
    """Round-trip time of a trivial query and the age of the newest 1m candle of any market."""
    started = time.perf_counter()
    try:
        session.execute(select(1))
        elapsed = (time.perf_counter() - started) * 1000
        newest = None
        for exchange, symbol, timeframe in list_markets(session):
            if timeframe == Timeframe.M1.value:
                latest = latest_candle_time_ms(session, exchange, symbol, Timeframe.M1)
                if latest is not None:
                    newest = latest if newest is None else max(newest, latest)
        age = None if newest is None else max(0.0, time.time() - (newest + Timeframe.M1.ms) / 1000)
        return True, elapsed, None, age
    except Exception as exc:  # noqa: BLE001 - shown on the page, never raised
        return False, None, type(exc).__name__, None


def check_redis(url: str | None) -> tuple[bool | None, float | None, str | None]:
    """PING round trip to Redis (``None`` when no Redis is configured)."""
    if not url:
        return None, None, None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    started = time.perf_counter()
    try:
        client.ping()
        return True, (time.perf_counter() - started) * 1000, None
    except redis.RedisError as exc:
        return False, None, type(exc).__name__
    finally:
        client.close()


_PROCESS = psutil.Process(os.getpid())
_PROCESS.cpu_percent(interval=None)  # the first reading only starts the measurement
psutil.cpu_percent(interval=None)


def process_figures() -> dict[str, float]:
    """CPU (since the previous call) and memory of this process and of the machine."""
    process = _PROCESS
    with process.oneshot():
        memory = process.memory_info()
        figures = {
            "process_cpu_percent": process.cpu_percent(interval=None),
            "process_rss_mib": memory.rss / 2**20,
            "process_threads": float(process.num_threads()),
        }
    vm = psutil.virtual_memory()
    figures.update(system_cpu_percent=psutil.cpu_percent(interval=None), system_memory_percent=vm.percent,
                   system_memory_total_gib=vm.total / 2**30)
    return figures


def recent_events(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    return [
        {"time": e.ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), "level": e.level,
         "component": e.component, "kind": e.kind, "message": e.message[:300]}
        for e in recent_system_events(session, limit=limit)
    ]


def format_age(seconds: float) -> str:
    """``42 s``, ``7 min``, ``5.2 h``, ``3.1 d``."""
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:,.1f} d"


def format_value(key: str, value: Any, now_ms: int | None = None) -> str:
    """A health field as text (times as ages, booleans as yes/no)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):  # counts by kind, e.g. malformed frames: show the total
        return str(sum(v for v in value.values() if isinstance(v, int | float)))
    if key.endswith("_ms") and isinstance(value, int | float) and value > 1e11:
        now_ms = now_ms or datetime_to_ms(datetime.now(UTC))
        return f"{format_age(max(0.0, (now_ms - value) / 1000))} ago"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)
