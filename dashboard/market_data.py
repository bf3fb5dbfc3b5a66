"""Reads behind the market chart: markets, candle windows at the right resolution, strategy
indicators, signal markers; :func:`assemble_chart` puts them together for :mod:`dashboard.figures`.

Every read goes through :mod:`database.repositories`; no query returns more than a few thousand
rows whatever the stored history (wide windows come from coarser stored timeframes).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from config.domain import SignalType, Timeframe
from config.errors import ConfigurationError
from dashboard.candles import (
    OhlcvArrays,
    bucket_ms_for,
    last_in_bucket,
    point_budget,
    resample,
    source_timeframe,
)
from dashboard.figures import Markers, MarketChart, Overlay, visible_y_range
from dashboard.live import LiveCandleCache, market_key
from database.repositories.market import (
    candle_arrays,
    get_candles,
    latest_candle_time_ms,
    list_markets,
    load_candles_frame,
)
from database.repositories.signals import signals_in_range

log = logging.getLogger(__name__)

DEFAULT_VISIBLE = 150  # candles shown when a market is opened
RIGHT_MARGIN = 6  # empty candle slots right of the newest candle, for it to grow into
SOURCE_ROWS_FACTOR = 4  # read at most this many times the point budget from the database
MAX_MARKERS = 300


@dataclass(frozen=True, slots=True)
class MarketInfo:
    exchange: str
    symbol: str
    timeframes: tuple[Timeframe, ...]

    @property
    def value(self) -> str:
        return f"{self.exchange}|{self.symbol}"


def markets(session: Session) -> list[MarketInfo]:
    """Stored markets with their timeframes (finest first)."""
    grouped: dict[tuple[str, str], list[Timeframe]] = {}
    for exchange, symbol, timeframe in list_markets(session):
        try:
            grouped.setdefault((exchange, symbol), []).append(Timeframe(timeframe))
        except ValueError:
            continue
    return [MarketInfo(ex, sym, tuple(sorted(tfs, key=lambda t: t.ms))) for (ex, sym), tfs in grouped.items()]


def parse_market(value: str) -> tuple[str, str]:
    exchange, _, symbol = value.partition("|")
    if not exchange or not symbol:
        raise ValueError(f"expected a market as 'exchange|symbol', got {value!r}")
    return exchange, symbol


@dataclass(frozen=True, slots=True)
class CandleWindow:
    arrays: OhlcvArrays
    bucket_ms: int
    source: Timeframe


def read_window(session: Session, exchange: str, symbol: str, timeframe: Timeframe, start_ms: int, end_ms: int,
                budget: int, stored: Sequence[Timeframe]) -> CandleWindow:
    """Candles of ``[start_ms, end_ms)`` as at most ``budget`` (possibly aggregated) candles."""
    span = max(end_ms - start_ms, timeframe.ms)
    source = source_timeframe(timeframe, span, budget * SOURCE_ROWS_FACTOR, stored)
    records = candle_arrays(session, exchange, symbol, source, start_ms, end_ms)
    if len(records) == 0 and source != timeframe:
        source = timeframe  # roll-ups not stored for this range: aggregate the native candles
        records = candle_arrays(session, exchange, symbol, source, start_ms, end_ms)
    arrays = OhlcvArrays.from_records(records)
    bucket = bucket_ms_for(span, source.ms, budget)
    return CandleWindow(resample(arrays, bucket) if bucket > source.ms else arrays, bucket, source)


def time_bounds(session: Session, exchange: str, symbol: str, timeframe: Timeframe) -> tuple[int, int] | None:
    """Open times of the first and the last stored candle."""
    latest = latest_candle_time_ms(session, exchange, symbol, timeframe)
    if latest is None:
        return None
    first = get_candles(session, exchange, symbol, timeframe, start_ms=0, limit=1)
    return (first[0].open_time_ms if first else latest), latest


def strategy_indicators(strategy: Any, session: Session, exchange: str, symbol: str, timeframe: Timeframe,
                        start_ms: int, end_ms: int, bucket_ms: int) -> tuple[Overlay, ...]:
    """The strategy's ``get_indicators()`` lines over the window, warmed up on earlier candles."""
    specs = strategy.get_indicators()
    if not specs:
        return ()
    pad = min(max(3 * int(strategy.warmup), 100), 3000)
    frame = load_candles_frame(session, exchange, symbol, timeframe, start_ms - pad * timeframe.ms, end_ms)
    if frame.empty:
        return ()
    values = strategy.compute_indicators(frame.copy())
    time_ms = frame["open_time"].to_numpy(dtype=np.int64)
    keep = time_ms >= start_ms
    overlays = []
    for spec in specs:
        series = np.asarray(values.get(spec.name, np.full(len(frame), np.nan)), dtype=np.float64)[keep]
        times = time_ms[keep]
        if bucket_ms > timeframe.ms:
            series = last_in_bucket(times, series, bucket_ms)
            times = np.unique(times - times % bucket_ms)
        overlays.append(Overlay(spec.label or spec.name, times, series, spec.panel, tuple(spec.levels)))
    return tuple(overlays)


def signal_markers(session: Session, exchange: str, symbol: str, timeframe: Timeframe, start_ms: int,
                   end_ms: int, strategy: str | None, source: str | None = None) -> tuple[Markers, ...]:
    """BUY / SELL signals stored for the market (of one strategy, or one source, when given)."""
    events = [e for e in signals_in_range(session, exchange, symbol, timeframe, start_ms, end_ms, source=source,
                                          signal_types=(SignalType.BUY, SignalType.SELL))
              if strategy is None or e.strategy == strategy][-MAX_MARKERS:]
    out = []
    for kind, signal_type in (("buy", SignalType.BUY), ("sell", SignalType.SELL)):
        chosen = [e for e in events if e.signal_type == signal_type and e.price is not None]
        if chosen:
            out.append(Markers(
                f"{signal_type.value} signals", kind,
                np.array([e.candle_time_ms for e in chosen], dtype=np.int64),
                np.array([e.price for e in chosen], dtype=np.float64),
                tuple(f"{e.signal_type.value} {e.source}: {e.reason}"[:160] for e in chosen), hollow=True,
            ))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ChartRequest:
    exchange: str
    symbol: str
    timeframe: Timeframe
    strategy: str | None = None
    view: tuple[int, int] | str | None = None  # None: newest candles; "all": whole history
    params: dict[str, Any] | None = None  # strategy parameters (defaults when None)
    signal_source: str | None = None  # only the signals of this source (e.g. "bot:<name>")
    signals: bool = True  # draw stored live signals


def assemble_chart(session: Session, live: LiveCandleCache, request: ChartRequest,
                   stored: Sequence[Timeframe],
                   extra_markers: Sequence[Markers] = ()) -> tuple[MarketChart, dict[str, Any]]:
    """The chart for ``request`` and the client state the live updates continue from."""
    tf, ex, sym = request.timeframe, request.exchange, request.symbol
    key = market_key(ex, sym, tf)
    state: dict[str, Any] = {"build": uuid.uuid4().hex, "key": list(key), "live": False, "live_times": [],
                             "version": 0, "strategy": request.strategy}
    title = f"{sym} · {tf.value} · {ex}"
    strategy = _make_strategy(request.strategy, request.params)
    bounds = time_bounds(session, ex, sym, tf)
    cached, version = live.newer_than(key, bounds[1] if bounds else 0)
    if bounds is None and not cached:
        return MarketChart(title, OhlcvArrays.empty(), OhlcvArrays.empty(), tf.ms,
                           notes=(f"no candles stored for {sym} {tf.value}",)), state
    first = bounds[0] if bounds else cached[0].open_time_ms
    newest = max(bounds[1] if bounds else 0, cached[-1].open_time_ms if cached else 0)
    visible = _visible_range(request.view, first, newest, tf)
    width = visible[1] - visible[0]
    load = (max(first, visible[0] - width // 2), min(newest + tf.ms, visible[1] + width // 2))
    specs = strategy.get_indicators() if strategy is not None else []
    budget = point_budget(7 + 2 * len(specs))
    window = read_window(session, ex, sym, tf, load[0], load[1], budget, stored)
    notes: list[str] = []
    history, live_arrays = window.arrays, OhlcvArrays.empty()
    is_live = window.bucket_ms == tf.ms and load[1] >= newest
    if is_live:
        history, live_arrays = _split_live(history, cached)
        state.update(live=True, live_times=[int(t) for t in live_arrays.time_ms], version=version)
    elif window.bucket_ms != tf.ms:
        notes.append(f"zoomed out: {window.bucket_ms // 60_000} min buckets")
    overlays: tuple[Overlay, ...] = ()
    if strategy is not None and window.source == tf:
        overlays = strategy_indicators(strategy, session, ex, sym, tf, load[0], load[1], window.bucket_ms)
    elif strategy is not None:
        notes.append("indicators hidden at this zoom")
    markers = tuple(extra_markers)
    if request.signals:
        markers = signal_markers(session, ex, sym, tf, load[0], load[1], request.strategy,
                                 request.signal_source) + markers
    everything = _concat(history, live_arrays)
    chart = MarketChart(
        title, history, live_arrays, window.bucket_ms, overlays, markers, x_range=visible,
        y_range=visible_y_range(everything, *visible), revision=f"{ex}|{sym}|{tf.value}|{request.strategy}",
        notes=tuple(notes),
    )
    state["bucket_ms"] = window.bucket_ms
    return chart, state


def _make_strategy(name: str | None, params: dict[str, Any] | None) -> Any:
    if not name:
        return None
    from strategies.registry import create_strategy

    try:
        return create_strategy(name, params or {})
    except ConfigurationError as exc:
        log.warning("dashboard: strategy %s unavailable: %s", name, exc)
        return None


def _visible_range(view: tuple[int, int] | str | None, first: int, newest: int, tf: Timeframe) -> tuple[int, int]:
    right = newest + RIGHT_MARGIN * tf.ms
    if view == "all":
        return first, right
    if isinstance(view, tuple):
        start, end = sorted(view)
        return int(start), int(max(end, start + tf.ms))
    return max(first, newest - DEFAULT_VISIBLE * tf.ms), right


def _split_live(history: OhlcvArrays, cached: Sequence[Any]) -> tuple[OhlcvArrays, OhlcvArrays]:
    """Move the newest stored candle and every newer cached one into the live arrays."""
    live_rows: dict[int, tuple[float, float, float, float, float]] = {}
    if len(history):
        i = len(history) - 1
        live_rows[int(history.time_ms[i])] = (float(history.open[i]), float(history.high[i]),
                                              float(history.low[i]), float(history.close[i]),
                                              float(history.volume[i]))
        history = history.slice(0, i)
    floor = min(live_rows) if live_rows else None
    for c in cached:
        if floor is None or c.open_time_ms >= floor:
            live_rows[c.open_time_ms] = (c.open, c.high, c.low, c.close, c.volume)
    times = sorted(live_rows)
    rows = np.array([live_rows[t] for t in times], dtype=np.float64).reshape(-1, 5)
    return history, OhlcvArrays(np.array(times, dtype=np.int64), *(rows[:, k] for k in range(5)))


def _concat(a: OhlcvArrays, b: OhlcvArrays) -> OhlcvArrays:
    return OhlcvArrays(*(np.concatenate((x, y)) for x, y in zip(a.columns(), b.columns(), strict=True)))
