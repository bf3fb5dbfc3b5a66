"""start_operations switches on the handler, /metrics and the notifier from Settings, and close() undoes it."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request

import pytest

from config.settings import load_settings
from data.ops.event_log import SystemEventHandler
from data.ops.notifier import LogNotifier
from data.ops.runtime import start_operations
from database.engine import make_engine, make_session_factory


def test_operations_start_from_settings_and_stop(sqlite_url: str) -> None:
    settings = load_settings({"METRICS_PORT": "0", "DATABASE_URL": sqlite_url})
    ops = start_operations(settings, make_session_factory(make_engine(sqlite_url)), "collector")
    try:
        assert ops.events in logging.getLogger().handlers and isinstance(ops.events, SystemEventHandler)
        assert ops.metrics_server is not None
        with urllib.request.urlopen(ops.metrics_server.url, timeout=5) as response:
            assert b"tcp_database_outage" in response.read()
        assert [type(n) for n in ops.notifier.notifiers] == [LogNotifier]
    finally:
        ops.close()
    assert ops.events not in logging.getLogger().handlers
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(ops.metrics_server.url, timeout=2)


def test_without_a_database_or_a_port_only_the_notifier_is_built() -> None:
    ops = start_operations(load_settings({}), None, "backtest-worker")
    assert (ops.events, ops.metrics_server) == (None, None)
    ops.close()
