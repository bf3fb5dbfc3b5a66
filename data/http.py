"""Paced, retried HTTP GETs for the venues' public REST (:mod:`data.okx.rest`, :mod:`data.binance.rest`)."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from config.errors import TemporaryError

log = logging.getLogger(__name__)


class RetryableStatus(Exception):  # noqa: N818 - an HTTP status, not an error of ours
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        super().__init__(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")


class PacedGet:
    """GETs spaced ``1 / requests_per_second`` apart (one queue per client), retried with back-off
    (``retry_base * 2**attempt``) on a network error, a timeout or a status in ``retry_statuses``; after
    ``retries`` retries a :class:`~config.errors.TemporaryError` names the URL and the last error."""

    def __init__(self, venue: str, *, requests_per_second: float, timeout: float, retries: int, retry_base: float,
                 retry_statuses: frozenset[int] = frozenset({429})) -> None:
        self.venue = venue
        self.retries = retries
        self.retry_base = retry_base
        self.requests = 0
        self._interval = 1.0 / requests_per_second
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry_statuses = retry_statuses
        self._next_slot = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, url: str, params: dict[str, str]) -> bytes:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            async with self._lock:
                wait = self._next_slot - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._next_slot = time.monotonic() + self._interval
            try:
                self.requests += 1
                async with self._session.get(url, params=params) as response:
                    body = await response.read()
                    if response.status in self._retry_statuses or response.status >= 500:
                        raise RetryableStatus(response.status, body)
                    return body
            except (TimeoutError, aiohttp.ClientError, RetryableStatus) as exc:
                last = exc
            delay = self.retry_base * 2 ** attempt
            log.info(f"{self.venue} rest: retrying", extra={"url": url, "error": repr(last), "delay_s": delay})
            await asyncio.sleep(delay)
        raise TemporaryError(f"{self.venue} REST {url} failed after {self.retries + 1} attempts: {last!r}")
