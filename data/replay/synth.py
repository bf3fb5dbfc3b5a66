"""Synthesise a trade tape from real 1m candles, so a replay can show days of realistic price action.

Every minute with volume becomes a handful of trades (4…``max_trades_per_minute``, more when the
minute's volume is high) whose first price is the candle's open, last price its close, extremes
exactly its high and low, and sizes sum to its volume (to the size step); times are spread over the
minute. The path between those anchors is random (seeded: the same input gives the same tape). An
independent aggregation of the tape therefore gives back the source candles' OHLC and volume;
trade counts, taker sides and intra-minute timing are invented.

``price_scale`` derives a second instrument from the same candles: prices are multiplied and sizes
divided by it (the demo's ETH-USDT is BTC price action scaled: synthetic, and documented as such).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.replay.tape import MINUTE_MS, Tape, read_candles_csv, write_tape


def synthesise_frame(candles: pd.DataFrame, *, seed: int = 7, price_scale: float = 1.0, price_decimals: int = 1,
                     size_decimals: int = 8, first_trade_id: int = 1_000_000_000,
                     max_trades_per_minute: int = 10) -> pd.DataFrame:
    """Trades (columns ``trade_id,ts_ms,price,size,side``, prices/sizes as floats) for ``candles``."""
    rng = np.random.default_rng(seed)
    tick, unit = 10.0 ** -price_decimals, 10.0 ** -size_decimals
    ohlc = candles[["open", "high", "low", "close"]].astype(float).to_numpy() * price_scale
    ticks = np.rint(ohlc / tick).astype(np.int64)
    units = np.rint(candles["volume"].astype(float).to_numpy() / price_scale / unit).astype(np.int64)
    keep = units >= 4
    ticks, units = ticks[keep], units[keep]
    minute_ts = candles["ts_ms"].to_numpy(np.int64)[keep]
    vol = units.astype(float)
    median = float(np.median(vol)) if len(vol) else 1.0
    n = np.clip(np.rint(4 + 6 * vol / median), 4, max_trades_per_minute).astype(np.int64)
    n = np.minimum(n, units)
    total = int(n.sum())
    minute = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    k = np.arange(total) - starts[minute]
    nn = n[minute]
    # Where the high and the low are hit: two distinct interior positions per minute.
    hi_at = 1 + rng.integers(0, n - 2)
    lo_at = 1 + (hi_at - 1 + 1 + rng.integers(0, n - 3)) % (n - 2)
    o, h, lo, c = (ticks[:, i] for i in range(4))
    a_pos, b_pos = np.minimum(hi_at, lo_at), np.maximum(hi_at, lo_at)
    a_val = np.where(hi_at < lo_at, h, lo)
    b_val = np.where(hi_at < lo_at, lo, h)
    am, bm, a_v, b_v = a_pos[minute], b_pos[minute], a_val[minute], b_val[minute]
    om, cm, hm, lm = o[minute], c[minute], h[minute], lo[minute]
    left_pos = np.where(k <= am, 0, np.where(k <= bm, am, bm))
    right_pos = np.where(k <= am, am, np.where(k <= bm, bm, nn - 1))
    left_val = np.where(k <= am, om, np.where(k <= bm, a_v, b_v))
    right_val = np.where(k <= am, a_v, np.where(k <= bm, b_v, cm))
    frac = (k - left_pos) / np.maximum(right_pos - left_pos, 1)
    noise = rng.normal(0.0, np.maximum((hm - lm) / 6.0, 1.0))
    path = np.clip(np.rint(left_val + (right_val - left_val) * frac + noise), lm, hm).astype(np.int64)
    path = np.where(k == 0, om, path)
    path = np.where(k == nn - 1, cm, path)
    path = np.where(k == am, a_v, path)
    path = np.where(k == bm, b_v, path)
    # Sizes: positive integers per minute summing to the minute's volume.
    weights = rng.gamma(0.7, 1.0, size=total) + 1e-9
    share = weights / np.add.reduceat(weights, starts)[minute]
    parts = np.maximum(1, np.floor(share * units[minute]).astype(np.int64))
    diff = units - np.add.reduceat(parts, starts)
    largest = starts + np.array([int(np.argmax(parts[s:s + m])) for s, m in zip(starts, n, strict=True)])
    parts[largest] += diff
    # Times: sorted random milliseconds inside the minute.
    offsets = rng.integers(0, MINUTE_MS, size=total)
    order = np.lexsort((offsets, minute))
    ts = minute_ts[minute] + offsets[order]
    prev = np.concatenate(([0], path[:-1]))
    coin = rng.random(total) < 0.5
    up = np.where((k == 0) | (path == prev), coin, path > prev)
    return pd.DataFrame({
        "trade_id": first_trade_id + np.arange(total, dtype=np.int64),
        "ts_ms": ts,
        "price": np.round(path * tick, price_decimals),
        "size": np.round(parts * unit, size_decimals),
        "side": np.where(up, "buy", "sell"),
    })


def synthesise(candles_path: str | Path, destination: str | Path, *, start_ms: int | None = None,
               end_ms: int | None = None, **options: object) -> Path:
    """Write the tape synthesised from the candle file ``candles_path`` (see :func:`synthesise_frame`),
    optionally only from the candles opening in ``[start_ms, end_ms)``."""
    candles = read_candles_csv(candles_path)
    if start_ms is not None:
        candles = candles[candles["ts_ms"] >= start_ms]
    if end_ms is not None:
        candles = candles[candles["ts_ms"] < end_ms]
    frame = synthesise_frame(candles, **options)  # type: ignore[arg-type]
    return write_tape(destination, frame)


def synthesise_tape(candles_path: str | Path, **options: object) -> Tape:
    """The synthesised tape in memory (what the bundled demo replay serves)."""
    frame = synthesise_frame(read_candles_csv(candles_path), **options)  # type: ignore[arg-type]
    return Tape(
        trade_id=frame["trade_id"].to_numpy(np.int64), ts_ms=frame["ts_ms"].to_numpy(np.int64),
        price=frame["price"].to_numpy(np.float64), size=frame["size"].to_numpy(np.float64),
        is_buy=(frame["side"] == "buy").to_numpy(), source=f"synthesised from {Path(candles_path).name}",
    )
