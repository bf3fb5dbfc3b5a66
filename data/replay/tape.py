"""Trade tapes: CSV or CSV.gz files with (at least) the columns ``trade_id,ts_ms,price,size,side``.

``trade_id`` is an integer (unique within a tape), ``ts_ms`` the trade time in epoch milliseconds,
``price``/``size`` decimal numbers (``size`` in base currency for spot), ``side`` the taker side
(``buy``/``sell``). Rows are sorted by ``(ts_ms, trade_id)`` on load. Other columns are ignored.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from config.errors import ConfigurationError

TAPE_COLUMNS = ("trade_id", "ts_ms", "price", "size", "side")
MINUTE_MS = 60_000


@dataclass(frozen=True, eq=False)
class Tape:
    """A tape in columns (numpy arrays of equal length, sorted by time then id)."""

    trade_id: np.ndarray
    ts_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray
    is_buy: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @property
    def first_ts(self) -> int:
        return int(self.ts_ms[0])

    @property
    def last_ts(self) -> int:
        return int(self.ts_ms[-1])

    @property
    def id_span(self) -> int:
        """Ids a loop pass shifts by, so passes never reuse a trade id."""
        return int(self.trade_id.max() - self.trade_id.min() + 1)

    @property
    def loop_shift_ms(self) -> int:
        """Whole UTC days from the first trade's day to the day after the last trade's day.

        A ``--loop`` pass is shifted by this, so passes share no candle bucket (up to 1d).
        """
        day = 86_400_000
        return (self.last_ts // day - self.first_ts // day + 1) * day


def read_tape(path: str | Path) -> Tape:
    """Load a tape; raises :class:`ConfigurationError` naming the file when it is not a valid tape."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"side": str}, usecols=lambda c: c in TAPE_COLUMNS)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigurationError(f"cannot read tape: {exc}", source=str(path)) from None
    missing = [c for c in TAPE_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"tape header lacks {missing}; expected columns {', '.join(TAPE_COLUMNS)}",
                                 source=str(path))
    if frame.empty:
        raise ConfigurationError("tape has no trades", source=str(path))
    sides = frame["side"].str.lower()
    bad_side = ~sides.isin(("buy", "sell"))
    if bad_side.any():
        row = int(np.flatnonzero(bad_side.to_numpy())[0])
        raise ConfigurationError(f"row {row + 2}: side {frame['side'].iloc[row]!r}; expected buy or sell",
                                 source=str(path))
    frame = frame.assign(side=sides).sort_values(["ts_ms", "trade_id"], kind="stable")
    if frame["trade_id"].duplicated().any():
        dup = int(frame.loc[frame["trade_id"].duplicated(), "trade_id"].iloc[0])
        raise ConfigurationError(f"trade_id {dup} appears twice", source=str(path))
    price = frame["price"].to_numpy(np.float64)
    size = frame["size"].to_numpy(np.float64)
    if not (np.isfinite(price).all() and (price > 0).all() and np.isfinite(size).all() and (size > 0).all()):
        raise ConfigurationError("price and size must be positive finite numbers", source=str(path))
    return Tape(
        trade_id=frame["trade_id"].to_numpy(np.int64),
        ts_ms=frame["ts_ms"].to_numpy(np.int64),
        price=price,
        size=size,
        is_buy=(frame["side"] == "buy").to_numpy(),
        source=str(path),
    )


def write_tape(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` (columns :data:`TAPE_COLUMNS`, values as they should appear) as a tape.

    A ``.gz`` suffix writes gzip with a fixed header time, so the same input gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.loc[:, list(TAPE_COLUMNS)].to_csv(index=False, lineterminator="\n")
    if path.suffix == ".gz":
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
            gz.write(text.encode())
    else:
        path.write_text(text)
    return path


def convert_binance(source: str | Path, destination: str | Path, *, start_ms: int | None = None,
                    end_ms: int | None = None) -> Path:
    """Re-shape a normalised Binance trade CSV (``trade_id,price,qty,taker_side,trade_time_ms``…)
    into a tape, keeping the exchange's price and quantity strings verbatim."""
    frame = pd.read_csv(source, dtype={"price": str, "qty": str})
    needed = ("trade_id", "price", "qty", "taker_side", "trade_time_ms")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"not a normalised Binance trade CSV (lacks {missing})", source=str(source))
    if start_ms is not None:
        frame = frame[frame["trade_time_ms"] >= start_ms]
    if end_ms is not None:
        frame = frame[frame["trade_time_ms"] < end_ms]
    out = pd.DataFrame({
        "trade_id": frame["trade_id"], "ts_ms": frame["trade_time_ms"],
        "price": frame["price"].map(_trim), "size": frame["qty"].map(_trim), "side": frame["taker_side"],
    })
    return write_tape(destination, out)


def _trim(text: str) -> str:
    """``61837.63000000`` -> ``61837.63`` (same value, shorter file)."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def tape_frame(tape: Tape) -> pd.DataFrame:
    """The tape as a DataFrame (columns of :data:`TAPE_COLUMNS`, ``side`` as text)."""
    return pd.DataFrame({
        "trade_id": tape.trade_id, "ts_ms": tape.ts_ms, "price": tape.price, "size": tape.size,
        "side": np.where(tape.is_buy, "buy", "sell"),
    })


def read_candles_csv(path: str | Path) -> pd.DataFrame:
    """A ``ts_ms,…,open,high,low,close,volume`` candle file (as in the OKX candle samples)."""
    with open(path, "rb") as raw:
        data = raw.read()
    if str(path).endswith(".gz"):
        data = gzip.decompress(data)
    frame = pd.read_csv(io.BytesIO(data), dtype={c: str for c in ("open", "high", "low", "close", "volume")})
    missing = [c for c in ("ts_ms", "open", "high", "low", "close", "volume") if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"candle file lacks {missing}", source=str(path))
    return frame
