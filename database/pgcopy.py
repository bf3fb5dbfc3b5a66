"""PostgreSQL binary ``COPY`` payloads built from and decoded into numpy arrays (pure, no I/O).

The binary format (PostgreSQL docs, "COPY — Binary Format"): an 11-byte signature, a 32-bit flags
word and a 32-bit header-extension length; then per tuple a 16-bit field count and, per field, a
32-bit byte length followed by the value in network byte order; a 16-bit ``-1`` ends the data.
Every field here is fixed-width within a group of rows (ints, floats, ``timestamptz`` as microseconds
since 2000-01-01 UTC, and text values that are the same on every row of the group, like a market's
symbol), so a group is one numpy structured array: no per-row formatting in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
# timestamptz on the wire: microseconds since 2000-01-01T00:00:00Z.
_PG_EPOCH_MS = 946_684_800_000


def ms_to_pg_timestamp(ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds -> the int64 a binary ``timestamptz`` field carries."""
    return (ms.astype(np.int64) - _PG_EPOCH_MS) * 1000


def encode(*groups: Sequence[np.ndarray]) -> bytes:
    """One binary COPY payload: the rows of each group in turn. A group is a list of equal-length 1-D
    arrays, one per target column in order, of fixed-width numbers or fixed-length bytes (``S``
    dtype: a text value, the same length on every row of the group). No NULLs."""
    bodies = []
    for group in groups:
        if not group:
            raise ValueError("no columns")
        count = len(group[0])
        fields: list[tuple[str, str | np.dtype]] = [("n", ">i2")]
        for i, column in enumerate(group):
            if len(column) != count:
                raise ValueError(f"column {i} has {len(column)} values, column 0 has {count}")
            fields += [(f"l{i}", ">i4"), (f"v{i}", column.dtype.newbyteorder(">"))]
        rows = np.empty(count, dtype=np.dtype(fields))
        rows["n"] = len(group)
        for i, column in enumerate(group):
            rows[f"l{i}"] = column.dtype.itemsize
            rows[f"v{i}"] = column
        bodies.append(rows.tobytes())
    return _HEADER + b"".join(bodies) + _TRAILER


def text(value: str, count: int) -> np.ndarray:
    """``count`` copies of one text value, as a column for :func:`encode`."""
    data = value.encode()
    if not data:
        raise ValueError("an empty text value has no fixed-length numpy form")
    return np.full(count, data, dtype=f"S{len(data)}")


def decode(payload: bytes | memoryview, dtypes: Sequence[str]) -> list[np.ndarray]:
    """The columns of a binary ``COPY … TO STDOUT`` payload whose fields are all non-NULL and of the
    given big-endian numpy types (e.g. ``">i8"``, ``">f8"``), as native arrays."""
    view = memoryview(payload)
    if bytes(view[:11]) != SIGNATURE:
        raise ValueError("not a PostgreSQL binary COPY payload")
    start = 19 + int.from_bytes(view[15:19], "big")
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for i, dtype in enumerate(dtypes):
        fields += [(f"l{i}", ">i4"), (f"v{i}", dtype)]
    row = np.dtype(fields)
    count = (len(view) - start - len(_TRAILER)) // row.itemsize
    rows = np.frombuffer(view, dtype=row, count=count, offset=start)
    if count and (rows["n"] != len(dtypes)).any():
        raise ValueError(f"expected {len(dtypes)} fields per row")
    return [rows[f"v{i}"].astype(np.dtype(dtype).newbyteorder("=")) for i, dtype in enumerate(dtypes)]
