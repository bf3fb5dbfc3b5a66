"""Signal watchers: strategy instances that only publish signals (no bot, no orders).

They are listed in ``_signals.json`` in the bots folder (``BOTS_DIR``) and run by the signal
engine, so the market page can show a strategy's signals on any market without a paper bot::

    {"watchers": [
        {"strategy": "rsi_reversion", "params": {"period": 14}, "symbol": "BTC-USDT", "timeframe": "5m"}
    ]}

A bad file names the file, the field and the reason (``ConfigurationError``) and starts nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot_manager.signal_engine import SignalEngine
from config.domain import Timeframe
from config.errors import ConfigurationError
from strategies.registry import create_strategy

WATCHERS_FILE = "_signals.json"


class Watcher(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    exchange: str = "okx"
    symbol: str
    timeframe: Timeframe

    @property
    def source(self) -> str:
        return f"watch:{self.strategy}:{self.symbol}:{self.timeframe.value}"


class WatcherFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    watchers: list[Watcher] = Field(default_factory=list)


def load_watchers(folder: Path) -> list[Watcher]:
    """The watchers of ``folder/_signals.json`` (none when the file does not exist), strategies checked."""
    path = folder / WATCHERS_FILE
    if not path.is_file():
        return []
    try:
        parsed = WatcherFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"not valid JSON ({exc.msg} at line {exc.lineno})", source=str(path)) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or None
        raise ConfigurationError(str(error["msg"]), source=str(path), field=field) from None
    sources = [w.source for w in parsed.watchers]
    duplicates = sorted({s for s in sources if sources.count(s) > 1})
    if duplicates:
        raise ConfigurationError(f"the same watcher is listed twice: {', '.join(duplicates)}", source=str(path),
                                 field="watchers")
    for index, watcher in enumerate(parsed.watchers):
        try:
            create_strategy(watcher.strategy, watcher.params)
        except ConfigurationError as exc:
            raise ConfigurationError(exc.reason, source=str(path), field=f"watchers.{index}.{exc.field or 'strategy'}"
                                     ) from None
    return list(parsed.watchers)


def build_signal_engine(watchers: list[Watcher]) -> SignalEngine:
    engine = SignalEngine()
    for watcher in watchers:
        engine.add_instance(watcher.source, create_strategy(watcher.strategy, watcher.params), watcher.exchange,
                            watcher.symbol, watcher.timeframe)
    return engine
