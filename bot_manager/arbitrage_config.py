"""Arbitrage bot configuration: one JSON file per bot in ``BOTS_DIR/arbitrage/``, validated into a frozen model.

Every key is documented in docs/bots.md ("Arbitrage bots"); the JSON schema is
``config/arbitrage_bot_schema.json`` (``python main.py bot schema --write`` regenerates both). Unknown keys are
rejected; errors are one :class:`~config.errors.ConfigurationError` naming the file, the dotted field and the
reason, and nothing starts.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from bot_manager.arbitrage import ArbitrageConfig, Leg
from bot_manager.broker import FeeModel
from bot_manager.config import (
    NAME_PATTERN,
    FeesConfig,
    _describe,
    _Strict,
    bot_files,
    check_unique_names,
    read_json_text,
)
from config.errors import ConfigurationError

FOLDER = "arbitrage"  # under BOTS_DIR
EXCHANGES = ("okx", "binance", "bybit")


class LegConfig(_Strict):
    exchange: Literal["okx", "binance", "bybit"] = Field(description="venue of this leg")
    symbol: str = Field(pattern=r"^[A-Z0-9]+-[A-Z0-9]+(-SWAP)?$", description="our name: BTC-USDT, BTC-USDT-SWAP")
    balance: Decimal = Field(gt=0, description="quote balance of this leg's paper account")
    fees: FeesConfig | None = Field(default=None, description="default: the venue's regular-tier schedule")


class ArbitrageBotConfig(_Strict):
    type: Literal["arbitrage"]
    name: str = Field(pattern=NAME_PATTERN)
    enabled: bool = True
    legs: tuple[LegConfig, LegConfig]
    quantity: Decimal = Field(gt=0, description="base units bought on one leg and sold on the other")
    entry_bps: float = Field(ge=-1000, le=1000, description="open when the net edge is at least this")
    exit_bps: float = Field(ge=-1000, le=1000, description="close when undoing costs at most this (gross)")
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    max_age_ms: int = Field(default=1_000, ge=1, le=600_000)

    @model_validator(mode="after")
    def _two_markets(self) -> ArbitrageBotConfig:
        a, b = self.legs
        if (a.exchange, a.symbol) == (b.exchange, b.symbol):
            raise ValueError("the two legs are the same market")
        if a.symbol.split("-")[:2] != b.symbol.split("-")[:2]:
            raise ValueError(f"the legs trade different pairs ({a.symbol}, {b.symbol})")
        return self

    @property
    def starting_balance(self) -> Decimal:
        return self.legs[0].balance + self.legs[1].balance

    def to_runtime(self) -> ArbitrageConfig:
        fees = None
        if any(leg.fees is not None for leg in self.legs):
            fees = tuple(FeeModel.for_venue(leg.exchange, leg.symbol) if leg.fees is None else leg.fees.model()
                         for leg in self.legs)
        return ArbitrageConfig(self.name, tuple(Leg(leg.exchange, leg.symbol) for leg in self.legs),  # type: ignore
                               self.quantity, self.entry_bps, self.exit_bps,
                               tuple(leg.balance for leg in self.legs), fees,  # type: ignore[arg-type]
                               self.latency_ms, self.max_age_ms)


def arbitrage_json_schema() -> dict[str, Any]:
    """The JSON schema of an arbitrage bot file (published as config/arbitrage_bot_schema.json)."""
    schema = ArbitrageBotConfig.model_json_schema()
    schema["title"] = "TCP Dashboard arbitrage bot"
    return schema


def parse_arbitrage_config(data: Any, source: str = "<arbitrage config>") -> ArbitrageBotConfig:
    if not isinstance(data, dict):
        raise ConfigurationError(f"expected a JSON object, got {type(data).__name__}", source=source)
    try:
        return ArbitrageBotConfig.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        field, reason = _describe(first)
        if first["type"] == "extra_forbidden":  # list the keys of the model the key was found in
            loc = tuple(first["loc"])
            model = (ArbitrageBotConfig if len(loc) == 1 else LegConfig if len(loc) == 3 else FeesConfig)
            reason = f"unknown key; allowed keys here: {', '.join(sorted(model.model_fields))}"
        if len(errors) > 1:
            reason += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
        raise ConfigurationError(reason, source=source, field=field) from None


def load_arbitrage_folder(bots_dir: Path | str) -> list[tuple[Path, ArbitrageBotConfig]]:
    """Validate every file of ``BOTS_DIR/arbitrage/`` (none when the folder does not exist); the first bad
    file, or a repeated name, raises."""
    folder = Path(bots_dir) / FOLDER
    if not folder.is_dir():
        return []
    out = [(path, parse_arbitrage_config(read_json_text(path.read_text(encoding="utf-8"), str(path)), str(path)))
           for path in bot_files(folder)]
    check_unique_names(out)
    return out
