"""The small exception tree, grouped by what the caller should do."""

from __future__ import annotations


class TcpDashboardError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigurationError(TcpDashboardError):
    """Bad configuration: stop and tell the user.

    ``source`` names the file or environment variable, ``field`` the offending key and
    ``reason`` what was wrong; ``str()`` gives one line with all three.
    """

    def __init__(self, reason: str, *, source: str | None = None, field: str | None = None) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        parts = [p for p in (source, field) if p]
        super().__init__(": ".join([*parts, reason]))


class SettingsError(ConfigurationError):
    """A bad environment variable or ``.env`` value."""


class TemporaryError(TcpDashboardError):
    """A failure worth retrying (network, database or Redis outage)."""


class StrategyError(TcpDashboardError):
    """User strategy code failed: isolate the strategy or bot, keep the rest running."""


class MalformedMessageError(TcpDashboardError):
    """An exchange message that cannot be parsed; ``kind`` groups it for counting."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")
