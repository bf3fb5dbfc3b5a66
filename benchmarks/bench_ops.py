"""Cost of the operations plumbing on hot paths, next to plain references.

* a metric helper call (``record_trades``) vs a bare ``prometheus_client`` ``Counter.inc`` vs a dict
  increment;
* a logged WARNING with the system-event handler installed (queue put only, database on a dead
  port so nothing is written) vs the stdlib ``QueueHandler`` doing the same job;
* one logfmt line (``KeyValueFormatter``) vs ``logging.Formatter`` with a classic format string;
* encrypting / decrypting one credential with Fernet.

Run: ``.venv/bin/python benchmarks/bench_ops.py``
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import timeit
from collections import Counter as DictCounter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Counter  # noqa: E402

from config.logging_setup import KeyValueFormatter  # noqa: E402
from data.ops import metrics  # noqa: E402
from data.ops.event_log import SystemEventHandler  # noqa: E402
from database.crypto import SecretCipher, generate_key  # noqa: E402
from database.engine import make_engine, make_session_factory  # noqa: E402


def per_call_ns(fn, number: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e9


def row(name: str, ours: float, reference_name: str, reference: float) -> None:
    print(f"{name:<38} {ours:>9.0f} ns   {reference_name:<34} {reference:>9.0f} ns   x{ours / reference:.2f}")


def bench_metrics() -> None:
    bare = Counter("bench_trades", "x", ["exchange", "symbol"], registry=CollectorRegistry())
    counts: DictCounter[tuple[str, str]] = DictCounter()
    ours = per_call_ns(lambda: metrics.record_trades("okx", "BTC-USDT"), 200_000)
    row("record_trades()", ours, "Counter.labels().inc()", per_call_ns(
        lambda: bare.labels("okx", "BTC-USDT").inc(), 200_000))
    row("record_trades()", ours, "dict[key] += 1", per_call_ns(
        lambda: counts.update((("okx", "BTC-USDT"),)), 200_000))


def bench_logging() -> None:
    def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
        log = logging.getLogger(name)
        log.propagate = False
        log.handlers = [handler]
        return log

    dead = make_session_factory(make_engine("postgresql://postgres@127.0.0.1:1/none"))
    ours = SystemEventHandler(dead, "bench", capacity=10_000_000, max_backoff=60)
    stdlib = logging.handlers.QueueHandler(queue.Queue())
    ours_log, std_log = logger_with(ours, "bench.ours"), logger_with(stdlib, "bench.std")
    row("warning() -> SystemEventHandler", per_call_ns(lambda: ours_log.warning("gap %d", 3, extra={"s": "BTC"}),
                                                        50_000),
        "warning() -> stdlib QueueHandler", per_call_ns(lambda: std_log.warning("gap %d", 3, extra={"s": "BTC"}),
                                                         50_000))
    ours.close(timeout=0.5)
    record = logging.LogRecord("data.collector", logging.INFO, __file__, 1, "candle %s closed", ("1m",), None)
    record.symbol = "BTC-USDT"
    classic = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    logfmt = KeyValueFormatter()
    row("KeyValueFormatter.format()", per_call_ns(lambda: logfmt.format(record), 50_000),
        "logging.Formatter.format()", per_call_ns(lambda: classic.format(record), 50_000))


def bench_crypto() -> None:
    cipher = SecretCipher(generate_key())
    secret = '{"api_key": "4f3c2a1b-okx", "api_secret": "B1F2C3D4E5F6", "passphrase": "x"}'
    token = cipher.encrypt(secret)
    print(f"{'Fernet encrypt one credential':<38} {per_call_ns(lambda: cipher.encrypt(secret), 5_000):>9.0f} ns")
    print(f"{'Fernet decrypt one credential':<38} {per_call_ns(lambda: cipher.decrypt(token), 5_000):>9.0f} ns")


if __name__ == "__main__":
    bench_metrics()
    bench_logging()
    bench_crypto()
