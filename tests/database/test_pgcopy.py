"""The binary COPY encoder/decoder against the format's byte layout (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from database import pgcopy


def test_encode_writes_header_tuples_and_trailer_in_network_order() -> None:
    payload = pgcopy.encode([np.array([7, -1], dtype=np.int32), np.array([1.5, 0.0])])
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8
    row1 = b"\x00\x02" + b"\x00\x00\x00\x04" + b"\x00\x00\x00\x07" + b"\x00\x00\x00\x08" + b"\x3f\xf8" + b"\x00" * 6
    row2 = b"\x00\x02" + b"\x00\x00\x00\x04" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x08" + b"\x00" * 8
    assert payload == header + row1 + row2 + b"\xff\xff"


def test_timestamps_count_microseconds_from_2000() -> None:
    ms = np.array([946_684_800_000, 946_684_800_001, 0])
    assert pgcopy.ms_to_pg_timestamp(ms).tolist() == [0, 1000, -946_684_800_000_000]


def test_decode_reads_what_encode_wrote_and_rejects_other_bytes() -> None:
    ints, floats = np.array([3, 4, 5], dtype=np.int64), np.array([0.1, 2e300, -7.25])
    decoded = pgcopy.decode(pgcopy.encode([ints, floats]), [">i8", ">f8"])
    assert decoded[0].tolist() == [3, 4, 5] and decoded[1].tolist() == [0.1, 2e300, -7.25]
    with pytest.raises(ValueError, match="not a PostgreSQL binary COPY"):
        pgcopy.decode(b"hello world, not a copy", [">i8"])
    with pytest.raises(ValueError, match="column 1 has 2 values"):
        pgcopy.encode([ints, floats[:2]])
