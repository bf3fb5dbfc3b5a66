"""Deliver alerts: Telegram, a JSON webhook, the log, or several at once.

Every notifier's ``send`` retries transient failures (connection errors, timeouts, HTTP 429 and
5xx) with exponential backoff, never raises into the caller (it returns whether the alert was
delivered), and suppresses an alert whose kind and title it already sent within
``dedupe_window`` seconds. The Telegram token is part of the request URL only: it is never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import aiohttp

from config.errors import ConfigurationError
from config.redact import mask_url
from config.settings import Settings
from data.ops import metrics
from data.ops.alerts import Alert, DuplicateFilter, Severity

log = logging.getLogger(__name__)

TELEGRAM_TEXT_LIMIT = 4096
_LOG_LEVELS = {Severity.INFO: logging.INFO, Severity.WARNING: logging.WARNING,
               Severity.ERROR: logging.ERROR, Severity.CRITICAL: logging.CRITICAL}


class Notifier(Protocol):
    async def send(self, alert: Alert) -> bool:
        """Deliver ``alert``; True when delivered. Never raises."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``first_delay`` s, then twice that, … at most ``max_delay``."""

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 10.0
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


@dataclass(frozen=True, slots=True)
class _Outcome:
    delivered: bool
    retry: bool
    detail: str
    retry_after: float | None = None


class HttpNotifier:
    """Base of the HTTP notifiers: duplicate suppression, retries, and the never-raise guarantee."""

    channel: ClassVar[str] = "http"

    def __init__(self, *, retry: RetryPolicy | None = None, dedupe_window: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry = retry or RetryPolicy()
        self._duplicates = DuplicateFilter(dedupe_window)
        self._clock = clock

    async def send(self, alert: Alert) -> bool:
        if not self._duplicates.allow(alert, self._clock()):
            metrics.ALERTS.labels(self.channel, "suppressed").inc()
            log.info("alert suppressed as a duplicate", extra={"channel": self.channel, "alert": alert.kind})
            return False
        try:
            delivered = await self._deliver(alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - alerting must never break the caller
            log.error("alert delivery crashed: %s", self._redact(f"{type(exc).__name__}: {exc}"),
                      extra={"channel": self.channel, "alert": alert.kind})
            delivered = False
        metrics.ALERTS.labels(self.channel, "sent" if delivered else "failed").inc()
        if not delivered:
            self._duplicates.forget(alert)
        return delivered

    async def _deliver(self, alert: Alert) -> bool:
        timeout = aiohttp.ClientTimeout(total=self.retry.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for attempt in range(1, self.retry.attempts + 1):
                outcome = await self._attempt(http, alert)
                if outcome.delivered:
                    return True
                last = attempt == self.retry.attempts
                log.warning("alert delivery failed: %s", self._redact(outcome.detail),
                            extra={"channel": self.channel, "alert": alert.kind, "attempt": attempt,
                                   "will_retry": outcome.retry and not last})
                if not outcome.retry or last:
                    return False
                wait = self.retry.delay(attempt)
                if outcome.retry_after is not None:
                    wait = min(max(wait, outcome.retry_after), self.retry.max_delay)
                await asyncio.sleep(wait)
        return False

    async def _attempt(self, http: aiohttp.ClientSession, alert: Alert) -> _Outcome:
        url, payload = self._request(alert)
        try:
            async with http.post(url, json=payload) as response:
                body = await response.text()
                return self._judge(response.status, response.headers, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _Outcome(False, True, f"{type(exc).__name__}: {exc}")

    def _judge(self, status: int, headers: Mapping[str, str], body: str) -> _Outcome:
        if 200 <= status < 300:
            return _Outcome(True, False, "")
        retry_after = _float_or_none(headers.get("Retry-After"))
        return _Outcome(False, status == 429 or status >= 500, f"HTTP {status}: {body[:200]}", retry_after)

    def _request(self, alert: Alert) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _redact(self, text: str) -> str:
        return text


class TelegramNotifier(HttpNotifier):
    """Sends alerts as Telegram messages through the Bot API (``sendMessage``)."""

    channel = "telegram"

    def __init__(self, token: str, chat_id: str, api_url: str = "https://api.telegram.org", **options: Any) -> None:
        super().__init__(**options)
        if not token or not chat_id:
            raise ConfigurationError("a Telegram notifier needs both a bot token and a chat id",
                                     source="TELEGRAM_BOT_TOKEN/TELEGRAM_CHAT_ID")
        self._token = token
        self.chat_id = chat_id
        self.api_url = api_url.rstrip("/")

    def __repr__(self) -> str:
        return f"TelegramNotifier(chat_id={self.chat_id!r}, api_url={self.api_url!r})"

    def _request(self, alert: Alert) -> tuple[str, dict[str, Any]]:
        text = f"[{alert.severity.upper()}] {alert.title}\n{alert.message}"
        return (f"{self.api_url}/bot{self._token}/sendMessage",
                {"chat_id": self.chat_id, "text": text[:TELEGRAM_TEXT_LIMIT], "disable_web_page_preview": True})

    def _judge(self, status: int, headers: Mapping[str, str], body: str) -> _Outcome:
        outcome = super()._judge(status, headers, body)
        if status == 429:
            # Telegram says how long to wait in the JSON body: {"parameters": {"retry_after": 3}}.
            try:
                retry_after = json.loads(body).get("parameters", {}).get("retry_after")
            except (ValueError, AttributeError):
                retry_after = None
            return _Outcome(False, True, outcome.detail, _float_or_none(retry_after) or outcome.retry_after)
        return outcome

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "<TELEGRAM_BOT_TOKEN>")


class WebhookNotifier(HttpNotifier):
    """POSTs each alert as JSON: ``kind, severity, title, message, data, ts, text``.

    ``text`` (title and message) makes the payload readable by chat webhooks that show a ``text``.
    """

    channel = "webhook"

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"expected an http:// or https:// URL, got {mask_url(url, hide_path=True)!r}",
                                     source="ALERT_WEBHOOK_URL")
        self.url = url

    def _request(self, alert: Alert) -> tuple[str, dict[str, Any]]:
        return self.url, {"kind": str(alert.kind), "severity": str(alert.severity), "title": alert.title,
                          "message": alert.message, "data": alert.data,
                          "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                          "text": f"{alert.title}: {alert.message}"}


class LogNotifier:
    """Logs each alert (at its severity, marked as a system event of kind ``alert``); always succeeds."""

    async def send(self, alert: Alert) -> bool:
        log.log(_LOG_LEVELS[alert.severity], "ALERT %s: %s", alert.title, alert.message,
                extra={"event": "alert", "alert": str(alert.kind), "alert_data": alert.data})
        return True


class MultiNotifier:
    """Sends every alert to all ``notifiers`` concurrently; True if at least one remote channel delivered
    it (or, with only the log, if it was logged)."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = tuple(notifiers)

    async def send(self, alert: Alert) -> bool:
        results = await asyncio.gather(*(n.send(alert) for n in self.notifiers), return_exceptions=True)
        remote = [r is True for n, r in zip(self.notifiers, results, strict=True) if not isinstance(n, LogNotifier)]
        return any(remote) if remote else all(r is True for r in results)


def notifier_from_settings(settings: Settings, **options: Any) -> MultiNotifier:
    """The log plus every channel configured in ``settings`` (Telegram, webhook).

    Raises :class:`ConfigurationError` when Telegram is half-configured.
    """
    notifiers: list[Notifier] = [LogNotifier()]
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    if token or settings.telegram_chat_id:
        if not token:
            raise ConfigurationError("is required when TELEGRAM_CHAT_ID is set", source="TELEGRAM_BOT_TOKEN")
        if not settings.telegram_chat_id:
            raise ConfigurationError("is required when TELEGRAM_BOT_TOKEN is set", source="TELEGRAM_CHAT_ID")
        notifiers.append(TelegramNotifier(token, settings.telegram_chat_id, settings.telegram_api_url, **options))
    if settings.alert_webhook_url:
        notifiers.append(WebhookNotifier(settings.alert_webhook_url, **options))
    return MultiNotifier(notifiers)


def _float_or_none(value: object) -> float | None:
    try:
        return float(value) if value is not None else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
