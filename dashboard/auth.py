"""Login for a dashboard bound beyond loopback: HTTP Basic authentication against
``DASHBOARD_USERNAME`` / ``DASHBOARD_PASSWORD``. On 127.0.0.1 no login is asked."""

from __future__ import annotations

import hmac

from flask import Flask, Response, request

from config.errors import ConfigurationError
from config.settings import Settings

REALM = "TCP Dashboard"


def require_credentials(settings: Settings) -> tuple[str, str] | None:
    """The (username, password) the dashboard must ask for, or ``None`` on a loopback address.

    Raises :class:`ConfigurationError` naming the missing variable when the dashboard is bound
    elsewhere without credentials.
    """
    if settings.is_loopback_dashboard:
        return None
    where = f"the dashboard is bound to {settings.dashboard_host}, beyond loopback, so it requires a login"
    if not settings.dashboard_username:
        raise ConfigurationError(f"{where}; set a username", source="DASHBOARD_USERNAME")
    password = settings.dashboard_password.get_secret_value() if settings.dashboard_password else ""
    if not password:
        raise ConfigurationError(f"{where}; set a password", source="DASHBOARD_PASSWORD")
    return settings.dashboard_username, password


def install_basic_auth(server: Flask, username: str, password: str) -> None:
    """Answer 401 to every request without the right credentials (compared in constant time)."""
    expected_user, expected_password = username.encode(), password.encode()

    @server.before_request
    def _check_login() -> Response | None:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            user_ok = hmac.compare_digest((auth.username or "").encode(), expected_user)
            password_ok = hmac.compare_digest((auth.password or "").encode(), expected_password)
            if user_ok and password_ok:
                return None
        return Response("login required", 401, {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
