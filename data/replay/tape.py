"""Trade tapes: CSV or CSV.gz files with (at least) the columns ``trade_id,ts_ms,price,size,side``.

``trade_id`` is an integer (unique within a tape), ``ts_ms`` the trade time in epoch milliseconds,
``price``/``size`` decimal numbers (``size`` in base currency for spot), ``side`` the taker side
(``buy``/``sell``). Rows are sorted by ``(ts_ms, trade_id)`` on load. Other columns are ignored.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """Load a tape; raises :class:`ConfigurationError` naming the file (and the row) when it is not one.

    Rows are numbered like a spreadsheet: the header is row 1.
    """
    path = Path(path)
    source = str(path)
    ids: list[int] = []
    times: list[int] = []
    prices: list[float] = []
    sizes: list[float] = []
    buys: list[bool] = []
    seen: dict[int, int] = {}
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise ConfigurationError(f"the tape is empty; expected a header with {', '.join(TAPE_COLUMNS)}",
                                         source=source)
            header = [h.strip() for h in header]
            missing = [c for c in TAPE_COLUMNS if c not in header]
            if missing:
                # The first line is not echoed: a file without a header would print its first trade.
                raise ConfigurationError(f"row 1 (the header, {len(header)} fields) lacks the columns "
                                         f"{', '.join(missing)}; expected {', '.join(TAPE_COLUMNS)}", source=source)
            at = [header.index(c) for c in TAPE_COLUMNS]
            for row_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigurationError(f"row {row_number}: {len(row)} fields, the header has {len(header)}",
                                             source=source)
                trade_id, ts, price, size, side = (row[i].strip() for i in at)
                value = _parse_row(row_number, trade_id, ts, price, size, side, source)
                if value[0] in seen:
                    raise ConfigurationError(f"row {row_number}: trade_id {value[0]} already on row "
                                             f"{seen[value[0]]}; ids must be unique", source=source)
                seen[value[0]] = row_number
                ids.append(value[0])
                times.append(value[1])
                prices.append(value[2])
                sizes.append(value[3])
                buys.append(value[4])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigurationError(f"cannot read the tape: {exc}", source=source) from None
    if not ids:
        raise ConfigurationError("the tape has no trades", source=source)
    order = np.lexsort((np.array(ids), np.array(times)))
    return Tape(trade_id=np.array(ids, dtype=np.int64)[order], ts_ms=np.array(times, dtype=np.int64)[order],
                price=np.array(prices)[order], size=np.array(sizes)[order], is_buy=np.array(buys)[order],
                source=source)


def _parse_row(row: int, trade_id: str, ts: str, price: str, size: str, side: str,
               source: str) -> tuple[int, int, float, float, bool]:
    def fail(column: str, text: str, expected: str) -> ConfigurationError:
        shown = text if len(text) <= 40 else text[:40] + "…"  # the field only, never the whole row
        return ConfigurationError(f"row {row}: {column} {shown!r} is not {expected}", source=source)

    def convert(cast: type, column: str, text: str, expected: str) -> Any:
        try:
            return cast(text)
        except ValueError:
            raise fail(column, text, expected) from None

    tid = convert(int, "trade_id", trade_id, "an integer")
    ms = convert(int, "ts_ms", ts, "an integer (epoch milliseconds)")
    px = convert(float, "price", price, "a number")
    sz = convert(float, "size", size, "a number")
    if not (math.isfinite(px) and px > 0):
        raise fail("price", price, "a positive number")
    if not (math.isfinite(sz) and sz > 0):
        raise fail("size", size, "a positive number")
    if ms < 0:
        raise fail("ts_ms", ts, "a time after 1970")
    lowered = side.lower()
    if lowered not in ("buy", "sell"):
        raise fail("side", side, "buy or sell")
    return tid, ms, px, sz, lowered == "buy"


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
