"""Host and Origin checks of every dashboard request (against DNS rebinding and cross-site requests).

A page on another site must not drive the dashboard from the user's browser: it could POST a Dash
callback (``/_dash-update-component``) that stops a bot. Two checks, decided by :func:`refusal`:

* **Host**: the ``Host`` header must name the dashboard: a loopback name (``127.0.0.1``,
  ``localhost``, ``[::1]``, any port), the address it is bound to, or a name listed in
  ``DASHBOARD_ALLOWED_HOSTS``. A DNS-rebinding page reaches 127.0.0.1 under its own name
  (``Host: evil.example``) and is refused.
* **Origin**: a request that carries ``Origin`` must come from the dashboard's own origin (the same
  host and port as ``Host``). A state-changing request (anything but GET/HEAD/OPTIONS) without
  ``Origin`` is judged by ``Referer``, else by ``Sec-Fetch-Site``; a request with none of them is not
  from a browser page (curl, scripts) and passes, since no page can strip all three.

A refused request gets 403 before any callback runs, so nothing changes. The login of a dashboard
bound beyond loopback (dashboard/auth.py) stays in force on top of these checks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, request

from config.settings import Settings

log = logging.getLogger(__name__)
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
ANY_HOST = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True)
class RequestHeaders:
    """What the checks read from a request (``None``: the header is absent)."""

    method: str
    host: str | None
    origin: str | None = None
    referer: str | None = None
    sec_fetch_site: str | None = None


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The host names the ``Host`` header may carry, lower case; ``{"*"}`` means any.

    Loopback names, the address the dashboard is bound to (unless a wildcard) and
    ``DASHBOARD_ALLOWED_HOSTS``. Bound to a wildcard address beyond loopback with no list, any
    name is accepted (the login guards that dashboard; the Origin check still applies).
    """
    configured = {name.strip().lower().strip("[]") for name in settings.dashboard_allowed_hosts if name.strip()}
    if ANY_HOST in configured:
        return frozenset({ANY_HOST})
    bound = settings.dashboard_host.strip().lower().strip("[]")
    if bound in WILDCARD_ADDRESSES and not configured:
        return frozenset({ANY_HOST})
    return frozenset(LOOPBACK_NAMES | configured | ({bound} if bound not in WILDCARD_ADDRESSES else set()))


def host_and_port(authority: str) -> tuple[str, str] | None:
    """``("example.com", "8050")`` of ``"Example.com:8050"``; IPv6 in brackets; ``None`` if malformed.

    The port is ``""`` when absent.
    """
    authority = authority.strip().lower()
    if not authority or any(c in authority for c in "/@ \t\\?#"):
        return None
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            return None
        name, rest = authority[1:end], authority[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        name, _, port = authority.partition(":")
        if ":" in port:
            return None
    if not name or (port and not port.isdigit()):
        return None
    return name, port


def _origin_authority(url: str) -> tuple[str, str] | None:
    """(host, port) of an Origin/Referer URL, the scheme's default port dropped."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
        return None
    found = host_and_port(parts.netloc)
    if found is None:
        return None
    name, port = found
    return name, "" if port == _DEFAULT_PORTS[parts.scheme] else port


def _same_origin(url: str, host: tuple[str, str], what: str) -> str | None:
    source = _origin_authority(url)
    if source is None:
        return f"{what} {url!r} is not an http(s) origin; expected this dashboard's own origin"
    own_port = "" if host[1] in _DEFAULT_PORTS.values() else host[1]
    if source != (host[0], own_port):
        return f"{what} {url!r} is another site; expected this dashboard's own origin (host {host[0]!r})"
    return None


def refusal(headers: RequestHeaders, allowed: Iterable[str]) -> str | None:
    """Why the request must be refused, or ``None`` to let it through (the pure decision)."""
    allowed = frozenset(allowed)
    if headers.host is None:
        return "no Host header; expected the dashboard's host name"
    host = host_and_port(headers.host)
    if host is None:
        return f"malformed Host header {headers.host!r}; expected host or host:port"
    if ANY_HOST not in allowed and host[0] not in allowed:
        names = ", ".join(sorted(allowed))
        return (f"Host {headers.host!r} is not an allowed name of this dashboard; expected one of {names} "
                "(add it to DASHBOARD_ALLOWED_HOSTS)")
    if headers.origin is not None:
        return _same_origin(headers.origin, host, "Origin")
    if headers.method.upper() in SAFE_METHODS:
        return None
    if headers.referer:
        return _same_origin(headers.referer, host, "Referer")
    site = (headers.sec_fetch_site or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site {site!r} on a {headers.method} without Origin; expected same-origin"
    return None


def install_request_guard(server: Flask, allowed: Iterable[str]) -> None:
    """Answer 403 (before any view or callback runs) to every request :func:`refusal` refuses."""
    names = frozenset(allowed)

    @server.before_request
    def _check_host_and_origin() -> Response | None:
        reason = refusal(RequestHeaders(
            method=request.method, host=request.headers.get("Host"), origin=request.headers.get("Origin"),
            referer=request.headers.get("Referer"), sec_fetch_site=request.headers.get("Sec-Fetch-Site")), names)
        if reason is None:
            return None
        log.warning("dashboard: refused %s %s: %s", request.method, request.path, reason)
        return Response(f"forbidden: {reason}\n", 403, {"Content-Type": "text/plain; charset=utf-8"})
