"""One typed settings object, read from the environment and an optional ``.env`` file.

Every variable is documented in docs/configuration.md and .env.example. A bad value raises
:class:`SettingsError` whose message is one line naming the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_serializer, field_validator

from config.domain import DEFAULT_TIMEFRAMES, Timeframe
from config.errors import SettingsError
from config.redact import mask_url, redact

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENUES = ("okx", "binance", "bybit")


class Settings(BaseModel):
    """Runtime settings. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    data_dir: Path = Field(PROJECT_ROOT / "var", alias="TCP_DATA_DIR")
    database_url: str = Field("", alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    redis_prefix: str = Field("", alias="REDIS_PREFIX")

    okx_ws_public_url: str = Field("wss://ws.okx.com:8443/ws/v5/public", alias="OKX_WS_URL")
    okx_ws_business_url: str = Field("wss://ws.okx.com:8443/ws/v5/business", alias="OKX_WS_BUSINESS_URL")
    okx_rest_url: str = Field("https://www.okx.com", alias="OKX_REST_URL")
    exchange: Literal["okx", "binance", "bybit"] = Field("okx", alias="EXCHANGE")
    binance_ws_url: str = Field("wss://stream.binance.com:9443/ws", alias="BINANCE_WS_URL")
    binance_rest_url: str = Field("https://api.binance.com", alias="BINANCE_REST_URL")
    binance_usdm_ws_url: str = Field("wss://fstream.binance.com/ws", alias="BINANCE_USDM_WS_URL")
    binance_usdm_rest_url: str = Field("https://fapi.binance.com", alias="BINANCE_USDM_REST_URL")
    bybit_ws_url: str = Field("wss://stream.bybit.com/v5/public/spot", alias="BYBIT_WS_URL")
    bybit_linear_ws_url: str = Field("wss://stream.bybit.com/v5/public/linear", alias="BYBIT_LINEAR_WS_URL")
    bybit_rest_url: str = Field("https://api.bybit.com", alias="BYBIT_REST_URL")
    market_source: Literal["auto", "live", "replay"] = Field("auto", alias="MARKET_SOURCE")
    symbols: tuple[str, ...] = Field(("BTC-USDT", "ETH-USDT"), alias="SYMBOLS")
    timeframes: tuple[Timeframe, ...] = Field(DEFAULT_TIMEFRAMES, alias="TIMEFRAMES")
    replay_speed: float = Field(60.0, ge=0, alias="REPLAY_SPEED")
    replay_port: int = Field(8765, ge=0, le=65535, alias="REPLAY_PORT")
    store_raw_trades: bool = Field(True, alias="STORE_RAW_TRADES")
    trade_retention_days: int = Field(7, ge=1, le=3650, alias="TRADE_RETENTION_DAYS")
    durable_commits: bool = Field(False, alias="DURABLE_COMMITS")
    order_books: bool = Field(True, alias="ORDER_BOOKS")
    market_state: bool = Field(True, alias="MARKET_STATE")
    book_depth: int = Field(20, ge=1, le=1000, alias="BOOK_DEPTH")
    book_snapshot_s: float = Field(10.0, ge=0, alias="BOOK_SNAPSHOT_S")
    okx_book_channel: Literal["books", "books5"] = Field("books", alias="OKX_BOOK_CHANNEL")

    dashboard_host: str = Field("127.0.0.1", alias="DASHBOARD_HOST")
    dashboard_port: int = Field(8050, ge=1, le=65535, alias="DASHBOARD_PORT")
    dashboard_username: str | None = Field(None, alias="DASHBOARD_USERNAME")
    dashboard_password: SecretStr | None = Field(None, alias="DASHBOARD_PASSWORD")
    dashboard_allowed_hosts: tuple[str, ...] = Field((), alias="DASHBOARD_ALLOWED_HOSTS")

    bots_dir: Path = Field(PROJECT_ROOT / "config" / "bots", alias="BOTS_DIR")
    strategies_dir: Path | None = Field(None, alias="STRATEGIES_DIR")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field("INFO", alias="LOG_LEVEL")
    log_dir: Path | None = Field(None, alias="LOG_DIR")
    metrics_port: int | None = Field(None, ge=0, le=65535, alias="METRICS_PORT")

    alert_webhook_url: str | None = Field(None, alias="ALERT_WEBHOOK_URL")
    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(None, alias="TELEGRAM_CHAT_ID")
    telegram_api_url: str = Field("https://api.telegram.org", alias="TELEGRAM_API_URL")
    secret_key: SecretStr | None = Field(None, alias="TCP_SECRET_KEY")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("symbols", "timeframes", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            items = tuple(part.strip() for part in value.split(",") if part.strip())
            if not items:
                raise ValueError("expected a comma-separated list with at least one item")
            return items
        return value

    @field_validator("symbols")
    @classmethod
    def check_venue_prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each ``venue:`` prefix of ``SYMBOLS`` names a venue; raises ``ValueError`` naming the item."""
        for item in value:
            venue, sep, symbol = item.rpartition(":")
            if sep and (venue not in VENUES or not symbol):
                raise ValueError(f"{item!r}: a venue prefix must be one of {', '.join(VENUES)} (e.g. binance:BTC-USDT)")
        return value

    def venue_symbols(self) -> dict[str, tuple[str, ...]]:
        """``SYMBOLS`` by venue: ``binance:BTC-USDT`` is Binance's, an unprefixed symbol ``EXCHANGE``'s; the
        venues in the order they first appear."""
        out: dict[str, list[str]] = {}
        for item in self.symbols:
            venue, _, symbol = item.rpartition(":")
            out.setdefault(venue or self.exchange, []).append(symbol)
        return {venue: tuple(dict.fromkeys(symbols)) for venue, symbols in out.items()}

    @field_validator("dashboard_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            names = tuple(part.strip() for part in value.split(",") if part.strip())
            bad = [name for name in names if any(c in name for c in "/@ ") or name.count(":") == 1]
            if bad:
                raise ValueError(f"expected comma-separated host names without scheme or port, got {bad[0]!r}")
            return names
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql", "sqlite")):
            raise ValueError(f"expected a postgresql://… or sqlite:///… URL, got {value!r}")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _check_redis_url(cls, value: object) -> object:
        if value in ("", None):
            return None
        if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected a redis://host:port/db URL, got {value!r}")
        return value

    @field_validator("okx_ws_public_url", "okx_ws_business_url", "binance_ws_url", "binance_usdm_ws_url",
                     "bybit_ws_url", "bybit_linear_ws_url")
    @classmethod
    def _check_ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError(f"expected a ws:// or wss:// URL, got {value!r}")
        return value

    @field_validator("okx_rest_url", "telegram_api_url", "binance_rest_url", "binance_usdm_rest_url", "bybit_rest_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    # Passwords in URLs (and a webhook's secret path) never show in repr(), str() or JSON.
    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_url(value, hide_path=name == "alert_webhook_url")
                         if name in _URL_FIELDS and isinstance(value, str) else value)

    @field_serializer("database_url", "redis_url", "alert_webhook_url", when_used="json")
    def _mask_urls_in_json(self, value: str | None, info: Any) -> str | None:
        return mask_url(value, hide_path=info.field_name == "alert_webhook_url") if value else value

    @property
    def effective_database_url(self) -> str:
        """``DATABASE_URL`` or, when unset, the embedded SQLite file under the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'tcp_dashboard.db'}"

    @property
    def uses_redis(self) -> bool:
        return self.redis_url is not None

    @property
    def is_loopback_dashboard(self) -> bool:
        return self.dashboard_host in ("127.0.0.1", "localhost", "::1")


_URL_FIELDS = frozenset({"database_url", "redis_url", "alert_webhook_url"})


_SECRET_VARIABLES = frozenset({"DASHBOARD_PASSWORD", "TELEGRAM_BOT_TOKEN", "TCP_SECRET_KEY"})
_ENV_NAMES = {name: (field.alias or name) for name, field in Settings.model_fields.items()}


def load_settings(env: dict[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Build :class:`Settings` from ``env`` (default: ``.env`` overlaid by the process environment).

    Raises :class:`SettingsError` naming the first bad variable.
    """
    if env is None:
        file = env_file if env_file is not None else Path.cwd() / ".env"
        values: dict[str, str] = {}
        if file.is_file():
            values.update({k: v for k, v in dotenv_values(file).items() if v is not None})
        values.update(os.environ)
        env = values
    known = set(_ENV_NAMES.values())
    raw = {key: value for key, value in env.items() if key in known}
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field_name = str(first["loc"][0]) if first["loc"] else "?"
        variable = _ENV_NAMES.get(field_name, field_name)
        received = raw.get(variable, "<unset>")
        message = str(first["msg"]).removeprefix("Value error, ")
        if variable in _SECRET_VARIABLES:
            text = f"{message.replace(received, '***')} (received a value of {len(received)} characters)"
        else:
            hidden = (mask_url(received, hide_path=variable == "ALERT_WEBHOOK_URL"),) if "://" in received else ()
            text = redact(f"{message} (received {received!r})".replace(received, hidden[0]) if hidden
                          else f"{message} (received {received!r})")
        raise SettingsError(text, source=variable) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
