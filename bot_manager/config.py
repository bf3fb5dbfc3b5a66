"""Bot configuration: one JSON file per bot, validated into a frozen typed model.

Every key is documented in docs/bots.md; the JSON schema is ``config/bot_schema.json``
(``python main.py bot schema`` regenerates it). Unknown keys are rejected. Errors are one
:class:`~config.errors.ConfigurationError` naming the file, the dotted field and the reason.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot_manager.broker import FeeModel, FixedSlippage, PaperBroker, Protection, VolumeSlippage
from config.domain import Timeframe
from config.errors import ConfigurationError
from config.json_text import DuplicateKeyError, loads_strict

MAX_LEVERAGE = 10.0
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Direction(StrEnum):
    LONG_ONLY = "long_only"
    LONG_SHORT = "long_short"


class FeesConfig(_Strict):
    """Fee rates in percent of notional (defaults: OKX spot, regular tier)."""

    maker_pct: float = Field(default=0.08, ge=0, le=5, description="maker fee, percent (0.08 = 0.08%)")
    taker_pct: float = Field(default=0.10, ge=0, le=5, description="taker fee, percent (0.10 = 0.10%)")

    def model(self) -> FeeModel:
        """The broker's fee model (fractions of notional, exact decimals of the percentages given)."""
        return FeeModel(Decimal(repr(self.maker_pct)) / 100, Decimal(repr(self.taker_pct)) / 100)


class FixedSlippageConfig(_Strict):
    model: Literal["fixed"] = "fixed"
    bps: float = Field(default=2.0, ge=0, le=1000, description="adverse slippage on every taker fill, basis points")


class VolumeSlippageConfig(_Strict):
    model: Literal["volume"]
    base_bps: float = Field(default=1.0, ge=0, le=1000, description="slippage of a tiny order, basis points")
    impact_bps: float = Field(default=50.0, ge=0, le=10_000,
                              description="extra slippage at 100% of the last candle's volume (square root)")
    max_bps: float = Field(default=100.0, ge=0, le=10_000, description="cap, basis points")


class FixedQuoteSizing(_Strict):
    method: Literal["fixed_quote"]
    amount: Decimal = Field(gt=0, description="order size in quote currency (e.g. 1000 USDT)")


class EquityFractionSizing(_Strict):
    method: Literal["equity_fraction"]
    fraction_pct: float = Field(gt=0, le=100 * MAX_LEVERAGE, description="order size, percent of equity")
    size_at: Literal["signal_close", "fill"] = Field(
        default="signal_close",
        description="price an entry is sized at: the signal candle's close (the order states a base-currency "
                    "quantity) or the fill (the order spends that share of the equity at the fill, as a "
                    "quote-sized market order does)")


class AtrSizing(_Strict):
    """Risk ``risk_pct`` of equity per trade with a stop ``atr_multiple`` ATRs away."""

    method: Literal["atr"]
    risk_pct: float = Field(default=1.0, gt=0, le=100, description="equity risked per trade, percent")
    atr_period: int = Field(default=14, ge=2, le=500)
    atr_multiple: float = Field(default=2.0, gt=0, le=50)


class RiskConfig(_Strict):
    stop_loss_pct: float | None = Field(
        default=None, gt=0, lt=100, description="exit when price moves this % against the entry")
    take_profit_pct: float | None = Field(
        default=None, gt=0, le=1000, description="exit when price moves this % in favour")
    trailing_stop_pct: float | None = Field(
        default=None, gt=0, lt=100, description="exit this % away from the best price since entry")
    max_exposure_pct: float = Field(
        default=50.0, gt=0, le=100 * MAX_LEVERAGE, description="position notional cap, percent of equity")
    max_open_positions: int = Field(
        default=1, ge=1, le=100, description="entries that may be stacked into one position")
    daily_loss_limit_pct: float | None = Field(
        default=None, gt=0, lt=100,
        description="close and stop entering for the UTC day after losing this % of the day's starting equity")
    max_drawdown_pct: float | None = Field(
        default=30.0, gt=0, lt=100,
        description="kill switch: close everything and halt at this drawdown from peak equity")
    cooldown_candles: int = Field(
        default=0, ge=0, le=100_000, description="candles without entries after a stop-out")


class BotConfig(_Strict):
    """One paper-trading bot."""

    name: str = Field(pattern=NAME_PATTERN, description="unique; letters, digits, '_', '.', '-'")
    description: str = ""
    enabled: bool = Field(default=True, description="start automatically when synced from config/bots/")
    exchange: Literal["okx", "binance", "bybit"] = Field(default="okx", description="the venue whose candles it trades")
    symbol: str = Field(pattern=r"^[A-Z0-9]+(-[A-Z0-9]+)+$", description="instrument, e.g. BTC-USDT")
    timeframe: Timeframe = Timeframe.M1
    strategy: str = Field(min_length=1, max_length=64)
    params: dict[str, int | float | str | bool] = Field(default_factory=dict, description="strategy parameters")
    starting_balance: Decimal = Field(gt=0, le=Decimal("1e12"), description="quote currency")
    fees: FeesConfig = FeesConfig()
    slippage: Annotated[FixedSlippageConfig | VolumeSlippageConfig, Field(discriminator="model")] = \
        FixedSlippageConfig()
    sizing: Annotated[FixedQuoteSizing | EquityFractionSizing | AtrSizing, Field(discriminator="method")]
    direction: Direction = Field(
        default=Direction.LONG_ONLY,
        description="long_only: BUY enters, SELL exits; long_short: SELL from flat enters short and a signal "
                    "against the position stops and reverses (closes it and enters the other way)")
    leverage: float = Field(default=1.0, ge=1, le=MAX_LEVERAGE)
    lot_size: Decimal = Field(default=Decimal("0.00000001"), gt=0, description="quantity step, base currency")
    price_tick: Decimal = Field(default=Decimal("0.00000001"), gt=0, description="price step of fills")
    min_order_quote: Decimal = Field(default=Decimal("1"), ge=0, description="smaller orders are skipped")
    risk: RiskConfig = RiskConfig()

    @model_validator(mode="after")
    def _exposure_within_leverage(self) -> BotConfig:
        cap = 100 * self.leverage
        if self.risk.max_exposure_pct > cap:
            raise _field_error("risk.max_exposure_pct",
                               f"{self.risk.max_exposure_pct}% exceeds 100% x leverage {self.leverage} = {cap}%")
        if isinstance(self.sizing, EquityFractionSizing) and self.sizing.fraction_pct > cap:
            raise _field_error("sizing.fraction_pct",
                               f"{self.sizing.fraction_pct}% exceeds 100% x leverage {self.leverage} = {cap}%")
        return self

    @property
    def allow_short(self) -> bool:
        return self.direction is Direction.LONG_SHORT

    @property
    def market_key(self) -> tuple[str, str, Timeframe]:
        return (self.exchange, self.symbol, self.timeframe)

    @property
    def quote_currency(self) -> str:
        return self.symbol.split("-")[1]

    def make_broker(self, order_id_prefix: str = "") -> PaperBroker:
        """A fresh :class:`PaperBroker` with this bot's balance, fees, slippage and exits."""
        fees = self.fees.model()
        s = self.slippage
        slippage = FixedSlippage(s.bps) if isinstance(s, FixedSlippageConfig) \
            else VolumeSlippage(s.base_bps, s.impact_bps, s.max_bps)
        r = self.risk
        return PaperBroker(
            self.starting_balance, fees=fees, slippage=slippage,
            protection=Protection(r.stop_loss_pct, r.take_profit_pct, r.trailing_stop_pct),
            leverage=self.leverage, allow_short=self.allow_short, lot_size=self.lot_size,
            price_tick=self.price_tick, order_id_prefix=order_id_prefix,
        )


class PortfolioConfig(_Strict):
    """Caps across all bots of one manager (``config/bots/_portfolio.json``; every key optional)."""

    max_drawdown_pct: float | None = Field(default=None, gt=0, lt=100,
                                           description="halt every bot at this drawdown of the summed equity")
    max_exposure_pct: float | None = Field(default=None, gt=0, le=100 * MAX_LEVERAGE,
                                           description="summed position notional cap, percent of summed equity")


class _FieldError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _field_error(field: str, reason: str) -> _FieldError:
    return _FieldError(field, reason)


_UNION_TAGS = {"sizing", "slippage"}
_TAGGED: dict[tuple[str, str], type[BaseModel]] = {
    ("sizing", "fixed_quote"): FixedQuoteSizing, ("sizing", "equity_fraction"): EquityFractionSizing,
    ("sizing", "atr"): AtrSizing, ("slippage", "fixed"): FixedSlippageConfig,
    ("slippage", "volume"): VolumeSlippageConfig,
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The (sub-)model that an error location points into, to list its allowed keys."""
    if len(loc) == 1:
        return BotConfig
    if len(loc) == 3 and loc[0] in _UNION_TAGS:
        return _TAGGED.get((str(loc[0]), str(loc[1])))
    if len(loc) == 2:
        field = BotConfig.model_fields.get(str(loc[0]))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
    return None


def _describe(error: Any) -> tuple[str, str]:
    loc = tuple(error["loc"])
    if len(loc) > 1 and loc[0] in _UNION_TAGS:
        shown = (loc[0], *loc[2:])
    else:
        shown = loc
    field = ".".join(str(p) for p in shown) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = sorted(model.model_fields) if model else []
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        tip = f" (did you mean {hint[0]!r}?)" if hint else ""
        return field, f"unknown key{tip}; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return field, "required key is missing"
    ctx = error.get("ctx", {})
    if kind == "union_tag_invalid":
        return f"{field}.{ctx.get('discriminator', '').strip(chr(39))}", \
            f"unknown kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return field, f"missing the {ctx.get('discriminator', 'kind')} key that selects the kind"
    message = str(error["msg"]).removeprefix("Value error, ")
    return field, f"{message} (received {error.get('input')!r})"


def parse_bot_config(data: Any, source: str = "<bot config>", *, check_strategy: bool = True) -> BotConfig:
    """Validate a decoded JSON object into a :class:`BotConfig`.

    With ``check_strategy`` the strategy name and parameters are checked by building the strategy.
    Raises :class:`ConfigurationError` (``source``, dotted ``field``, ``reason``).
    """
    if not isinstance(data, dict):
        raise ConfigurationError(f"expected a JSON object, got {type(data).__name__}", source=source)
    try:
        config = BotConfig.model_validate(data)
    except ValidationError as exc:
        # An unknown key usually explains the "missing" error next to it, so it is reported first.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        ctx_error = first.get("ctx", {}).get("error")
        if isinstance(ctx_error, _FieldError):
            field, reason = ctx_error.field, ctx_error.reason
        else:
            field, reason = _describe(first)
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
        raise ConfigurationError(reason, source=source, field=field) from None
    if check_strategy:
        check_strategy_of(config, source)
    return config


def check_strategy_of(config: BotConfig, source: str) -> None:
    """Build the bot's strategy once; unknown names and bad parameters become a ConfigurationError, and so does
    a strategy reading perpetual-market inputs (``inputs``) on a spot symbol."""
    from strategies.registry import create_strategy

    try:
        strategy = create_strategy(config.strategy, config.params)
    except ConfigurationError as exc:
        field = "strategy" if exc.field in (None, "strategy") else f"params.{exc.field}"
        raise ConfigurationError(exc.reason, source=source, field=field) from None
    if strategy.inputs and not config.symbol.endswith("-SWAP"):
        raise ConfigurationError(f"strategy {config.strategy!r} reads {', '.join(strategy.inputs)}, which only "
                                 f"perpetual (-SWAP) markets have; {config.symbol!r} is not one",
                                 source=source, field="symbol")


def load_bot_text(text: str, source: str = "<bot config>", *, check_strategy: bool = True) -> BotConfig:
    """Parse JSON text into a :class:`BotConfig` (see :func:`parse_bot_config`)."""
    return parse_bot_config(read_json_text(text, source), source, check_strategy=check_strategy)


def read_json_text(text: str, source: str) -> Any:
    """Decode a config file's JSON; bad JSON or a repeated key is a :class:`ConfigurationError`."""
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                                 source=source) from None
    except DuplicateKeyError as exc:
        raise ConfigurationError(str(exc), source=source, field=exc.path) from None


def load_bot_file(path: Path | str, *, check_strategy: bool = True) -> BotConfig:
    """Read and validate one bot file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigurationError("file not found" if not file.exists() else "not a file", source=str(file))
    return load_bot_text(file.read_text(encoding="utf-8"), str(file), check_strategy=check_strategy)


PORTFOLIO_FILE = "_portfolio.json"


def bot_files(folder: Path) -> list[Path]:
    """The bot files of a folder: ``*.json`` not starting with ``_``, sorted by name."""
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("_"))


def load_bot_folder(folder: Path | str) -> list[tuple[Path, BotConfig]]:
    """Validate every bot file of ``folder``; the first bad file (or a duplicate name) raises."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigurationError("bot folder not found", source=str(root))
    loaded = [(path, load_bot_file(path)) for path in bot_files(root)]
    check_unique_names(loaded)
    return loaded


def check_unique_names(loaded: Sequence[tuple[Path, BotConfig | Any]]) -> None:
    """Two files may not name the same bot."""
    seen: dict[str, Path] = {}
    for path, config in loaded:
        if config.name in seen:
            raise ConfigurationError(f"bot name {config.name!r} is already used by {seen[config.name]}",
                                     source=str(path), field="name")
        seen[config.name] = path


def load_portfolio(folder: Path | str) -> PortfolioConfig:
    """``_portfolio.json`` of the bot folder, or the defaults (no portfolio caps) when absent."""
    path = Path(folder) / PORTFOLIO_FILE
    if not path.is_file():
        return PortfolioConfig()
    source = str(path)
    try:
        data = loads_strict(path.read_text(encoding="utf-8"))
        return PortfolioConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid JSON: {exc.msg} at line {exc.lineno}", source=source) from None
    except DuplicateKeyError as exc:
        raise ConfigurationError(str(exc), source=source, field=exc.path) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        reason = "unknown key" if first["type"] == "extra_forbidden" else str(first["msg"])
        raise ConfigurationError(reason, source=source, field=field) from None


def bot_json_schema() -> dict[str, Any]:
    """The JSON schema of a bot file (published as config/bot_schema.json)."""
    schema = BotConfig.model_json_schema()
    schema["title"] = "TCP Dashboard bot"
    return schema
