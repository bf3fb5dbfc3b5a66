"""The database shell of :mod:`strategies.inputs`: the stored funding settlements, open interest and liquidations
of a market as a :class:`~strategies.inputs.MarketHistory`, and candles with the inputs a strategy reads attached.

The bot manager and the signal engine attach inputs to their windows with :func:`attach_stored_inputs`; a
backtest reads the whole :func:`stored_history` (funding perhaps from a file) for its series. Both end in
:func:`strategies.inputs.input_columns`, so a bar gets the same values live and in a backtest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from config.domain import Side
from config.errors import ConfigurationError
from database.repositories.derivatives import funding_settlements, liquidations, open_interest
from strategies.bars import Bars
from strategies.inputs import FUNDING_LOOKBACK_MS, MarketHistory, input_columns


def stored_history(session: Session, exchange: str, symbol: str, names: Sequence[str],
                   start_ms: int | None = None, end_ms: int | None = None) -> MarketHistory:
    """What the database holds of ``names`` for the market, ``start_ms <= time < end_ms`` (settlements and
    open interest from a day earlier, for the values in force at ``start_ms``)."""
    early = None if start_ms is None else start_ms - FUNDING_LOOKBACK_MS
    parts: dict[str, np.ndarray] = {}
    if "funding_rate" in names:
        rows = funding_settlements(session, exchange, symbol, early, end_ms)
        parts["funding_times"] = np.array([t for t, _ in rows], dtype=np.int64)
        parts["funding_rates"] = np.array([r for _, r in rows], dtype=np.float64)
    if "open_interest" in names:
        reports = open_interest(session, exchange, symbol, early, end_ms)
        parts["oi_times"] = np.array([r.ts_ms for r in reports], dtype=np.int64)
        parts["oi_values"] = np.array([r.contracts if r.contracts is not None else r.base for r in reports],
                                      dtype=np.float64)
    if "long_liquidations" in names or "short_liquidations" in names:
        rows_ = liquidations(session, exchange, symbol, start_ms, end_ms)
        for side, prefix in ((Side.SELL, "long"), (Side.BUY, "short")):  # a long is liquidated by a forced sell
            mine = [r for r in rows_ if r.side is side]
            parts[f"{prefix}_liq_times"] = np.array([r.ts_ms for r in mine], dtype=np.int64)
            parts[f"{prefix}_liq_sizes"] = np.array([r.size for r in mine], dtype=np.float64)
    return MarketHistory(**parts, source=f"stored market state of {exchange} {symbol}")  # type: ignore[arg-type]


def attach_stored_inputs(session: Session, exchange: str, symbol: str, bar_ms: int, bars: Bars,
                         names: Sequence[str]) -> Bars:
    """``bars`` with the stored inputs ``names`` of the market attached (read for the span of ``bars`` only)."""
    if not names or not len(bars):
        return bars
    # through the last bar's close inclusive: a settlement at the close is in force for that bar
    history = stored_history(session, exchange, symbol, names, int(bars.open_time[0]),
                             int(bars.open_time[-1]) + bar_ms + 1)
    return bars.with_extra(input_columns(bars.open_time, bar_ms, history, names))


def require_history(history: MarketHistory, names: Sequence[str], strategy: str, market: str) -> None:
    """A backtest of a strategy reading funding or open interest needs some stored: a :class:`ConfigurationError`
    naming the first input with nothing (liquidations may be none at all: those bars read 0)."""
    sizes = {"funding_rate": len(history.funding_times), "open_interest": len(history.oi_times)}
    for name in names:
        if sizes.get(name) == 0:
            raise ConfigurationError(f"strategy {strategy!r} reads {name}, and none is stored for {market} (the "
                                     "collector of a -SWAP market stores it; funding may come from a file)",
                                     field="strategy")
