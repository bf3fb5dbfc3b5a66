"""What a backtest is asked to do, as one frozen value that is stored with the run.

The account side is a full bot configuration (:class:`bot_manager.config.BotConfig`): fees,
slippage, sizing, direction, leverage and risk rules mean exactly what they mean for a live bot,
and the best parameters of an optimisation export as a bot file.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot_manager.config import BotConfig, Direction, parse_bot_config
from config.domain import Timeframe
from config.errors import ConfigurationError

CSV_SYMBOL = "CSV-DATA"
Path_ = Literal["auto", "bar", "vectorised"]


class BacktestSpec(BaseModel):
    """A reproducible backtest: bot configuration (strategy, parameters, account), data and period.

    Data comes from ``data_file`` (CSV) when set, else from the stored candles of the bot's
    exchange, symbol and timeframe. Trading happens in ``[start_ms, end_ms)``; earlier bars only
    warm the strategy up (``warmup_bars`` before ``start_ms`` are loaded from the database; by
    default the strategy's ``history`` plus one day, so the first signals equal a live bot's).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot: BotConfig
    data_file: str | None = None
    funding_file: str | None = None  # CSV of funding settlements (backtesting/funding.py): perp positions pay them
    funding_db: bool = False  # the settlements of the stored funding_rates of the bot's market instead
    start_ms: int | None = None
    end_ms: int | None = None
    warmup_bars: int | None = Field(default=None, ge=0)
    close_at_end: bool = False
    path: Path_ = "auto"

    @model_validator(mode="after")
    def _period_in_order(self) -> BacktestSpec:
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise ValueError(f"end ({self.end_ms}) must be after start ({self.start_ms})")
        return self

    @property
    def strategy(self) -> str:
        return self.bot.strategy

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.bot.params)

    def with_params(self, params: dict[str, Any]) -> BacktestSpec:
        return self.model_copy(update={"bot": self.bot.model_copy(update={"params": dict(params)})})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigurationError(str(first["msg"]), source="backtest spec", field=field) from None


def build_bot_config(strategy: str, params: dict[str, Any] | None = None, *, symbol: str | None = None,
                     timeframe: Timeframe | str = Timeframe.M1, exchange: str = "okx", cash: float = 10_000.0,
                     fee: float = 0.001, slippage_bps: float = 0.0, size_fraction: float = 1.0,
                     size_at: str = "signal_close", allow_short: bool = False, leverage: float = 1.0,
                     stop_loss_pct: float | None = None, take_profit_pct: float | None = None,
                     trailing_stop_pct: float | None = None, name: str = "backtest") -> BotConfig:
    """A bot configuration from the backtest command's flags.

    ``fee`` is a fraction per fill (0.001 = 0.1%, maker and taker alike), ``size_fraction`` the
    share of equity each entry uses (1.0 = all of it, fee included), ``size_at`` the price it is sized
    at (``signal_close`` or ``fill``). No exposure cap beyond the
    leverage and no drawdown kill switch unless asked for.
    """
    data: dict[str, Any] = {
        "name": name, "exchange": exchange, "symbol": symbol or CSV_SYMBOL,
        "timeframe": Timeframe(timeframe).value, "strategy": strategy, "params": dict(params or {}),
        "starting_balance": str(Decimal(repr(float(cash)))),
        "fees": {"maker_pct": round(fee * 100, 10), "taker_pct": round(fee * 100, 10)},
        "slippage": {"model": "fixed", "bps": slippage_bps},
        "sizing": {"method": "equity_fraction", "fraction_pct": round(size_fraction * 100, 10),
                   "size_at": size_at},
        "direction": (Direction.LONG_SHORT if allow_short else Direction.LONG_ONLY).value,
        "leverage": leverage,
        "risk": {"stop_loss_pct": stop_loss_pct, "take_profit_pct": take_profit_pct,
                 "trailing_stop_pct": trailing_stop_pct, "max_exposure_pct": 100 * leverage,
                 "max_drawdown_pct": None},
    }
    try:
        return parse_bot_config(data, "backtest options")
    except ConfigurationError as exc:
        raise ConfigurationError(exc.reason, source="backtest options", field=_flag_of(exc.field)) from None


_FLAGS = {"starting_balance": "--cash", "fees.taker_pct": "--fee", "fees.maker_pct": "--fee",
          "slippage.bps": "--slippage-bps", "sizing.fraction_pct": "--size-fraction",
          "sizing.size_at": "--size-at", "symbol": "--symbol",
          "leverage": "--leverage", "risk.stop_loss_pct": "--stop-loss-pct",
          "risk.take_profit_pct": "--take-profit-pct", "risk.trailing_stop_pct": "--trailing-stop-pct"}


def _flag_of(field: str | None) -> str | None:
    return _FLAGS.get(field or "", field)


def export_bot(bot: BotConfig, params: dict[str, Any], name: str) -> dict[str, Any]:
    """A bot file (JSON object) running the strategy with ``params`` on ``bot``'s account settings."""
    exported = bot.model_copy(update={"params": dict(params), "name": name})
    data = exported.model_dump(mode="json", exclude_defaults=False)
    parse_bot_config(data, "exported bot")  # what we write must load back
    return data
