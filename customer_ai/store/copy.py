"""PostgreSQL's binary ``COPY`` format, encoded a block of rows at a time with Arrow (no per-row Python).

The binary format spares the server the parsing of CSV text (quotes doubled in every JSON text) and numbers;
a ``json`` field is the JSON text itself, which the server checks once and keeps as it is, and a ``jsonb`` field
is the version byte 1 followed by the JSON text, which the server parses into its binary form.  Each row is
the number of fields (int16), then per field its length (int32) and its bytes, all big-endian, a NULL being the
length -1 alone; the stream starts with a fixed header and ends with -1 (int16).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["BinaryCopy", "Field"]

_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_POSTGRES_EPOCH = dt.date(2000, 1, 1)
_EPOCH_DAYS = (_POSTGRES_EPOCH - dt.date(1970, 1, 1)).days  # from Arrow's epoch to PostgreSQL's
_NULL = (-1).to_bytes(4, "big", signed=True)  # a NULL field: its length, -1, and no bytes
_BLOCK_ROWS = 32_768
_NUMBERS = {"float8": ">f8", "int4": ">i4"}


class Field(NamedTuple):
    """One column of a binary ``COPY``: ``kind`` is text, json, jsonb, float8, int4 or date; ``values`` its values.

    text, json and jsonb: an Arrow text array; int4: a NumPy array; float8: a NumPy array, or an Arrow float64
    array whose nulls are sent as NULL; date: one ``YYYY-MM-DD`` for every row, or an Arrow date32 array whose
    nulls are sent as NULL.  ``prepare``, if given, maps each block of text values to what is sent: work done block
    by block, while the server takes in the previous block.
    """

    kind: str
    values: object
    prepare: Callable[[pa.Array], pa.Array] | None = None


def _fixed(values: np.ndarray) -> pa.Array:
    """Return each element's bytes (as laid out in memory) as one binary value."""
    values = np.ascontiguousarray(values)
    width = values.dtype.itemsize
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values)])
    return array.cast(pa.binary())


def _constant(value: bytes, rows: int) -> pa.Array:
    return _fixed(np.full(rows, value, dtype=f"S{len(value)}"))


def _sized(values: np.ndarray, valid: pa.Array | None = None) -> list[pa.Array]:
    """Return the fields of ``values`` (big-endian already): each one's length then its bytes, by row.

    Where ``valid`` (Arrow booleans, one per row) is false the field is a NULL: the length -1 alone.
    """
    rows, width = len(values), values.dtype.itemsize
    if valid is None:
        return [_constant(width.to_bytes(4, "big"), rows), _fixed(values)]
    fields = np.empty(rows, dtype=[("length", ">i4"), ("value", values.dtype)])  # packed: 4 + width bytes a row
    fields["length"] = width
    fields["value"] = values
    return [pc.if_else(valid, _fixed(fields), _constant(_NULL, rows))]


def _numbers(kind: str, values: object, start: int, stop: int) -> list[pa.Array]:
    """Return the fields of rows ``start`` to ``stop`` of a float8, int4 or date column (see :class:`Field`)."""
    rows = stop - start
    if kind == "date" and isinstance(values, str):
        days = (dt.date.fromisoformat(values) - _POSTGRES_EPOCH).days
        return [_constant((4).to_bytes(4, "big") + days.to_bytes(4, "big", signed=True), rows)]
    if isinstance(values, pa.Array):
        block = values.slice(start, rows)
        if block.null_count == rows:  # a column the run did not predict: NULLs alone
            return [_constant(_NULL, rows)]
        valid = pc.is_valid(block) if block.null_count else None
        if kind == "date":
            block = pc.subtract(block.cast(pa.int32()), _EPOCH_DAYS)
        number = block.fill_null(0).to_numpy(zero_copy_only=False)
    else:
        valid, number = None, np.asarray(values[start:stop])
    dtype = ">i4" if kind == "date" else _NUMBERS[kind]
    if kind == "int4" and len(number) and (number.min() < -(2**31) or number.max() >= 2**31):
        raise ValueError(f"a value beyond PostgreSQL's integer: {number.min()} to {number.max()}")
    return _sized(number.astype(dtype), valid)


class BinaryCopy:
    """A file-like object yielding ``COPY ... FROM STDIN WITH (FORMAT binary)`` data for ``copy_expert``.

    Parameters
    ----------
    fields : sequence of Field
        The columns, in the order of the ``COPY`` column list; all of the same length, no missing values but the
        nulls of Arrow float8 and date columns (sent as NULL).
    """

    def __init__(self, fields: Sequence[Field]) -> None:
        self.fields = list(fields)
        self.rows = len(self.fields[0].values) if fields else 0
        self.error: Exception | None = None
        self._blocks = self._encode()

    def _block(self, start: int, stop: int) -> bytes:
        rows = stop - start
        parts = [_constant(len(self.fields).to_bytes(2, "big"), rows)]
        for kind, values, prepare in self.fields:
            if kind in ("text", "json", "jsonb"):
                text = values.slice(start, rows)
                text = (text if prepare is None else prepare(text)).cast(pa.binary())
                extra = 1 if kind == "jsonb" else 0  # the jsonb version byte
                lengths = (pc.binary_length(text).to_numpy(zero_copy_only=False) + extra).astype(">i4")
                parts.append(_fixed(lengths))
                if kind == "jsonb":
                    parts.append(_constant(b"\x01", rows))
                parts.append(text)
            else:
                parts.extend(_numbers(kind, values, start, stop))
        joined = pc.binary_join_element_wise(*parts, b"")
        offsets = np.frombuffer(joined.buffers()[1], dtype="int32", count=rows + 1, offset=joined.offset * 4)
        return joined.buffers()[2].slice(offsets[0], offsets[-1] - offsets[0]).to_pybytes()

    def _encode(self) -> Iterator[bytes]:
        yield _HEADER
        for start in range(0, self.rows, _BLOCK_ROWS):
            yield self._block(start, min(start + _BLOCK_ROWS, self.rows))
        yield _TRAILER

    def read(self, size: int = -1) -> bytes:  # noqa: ARG002 - a whole block at a time
        """Return the next block of the stream (b"" at its end).

        An error while encoding ends the stream early (the server then refuses the incomplete data) and is kept
        in :attr:`error`, for the caller to raise instead of the server's complaint.
        """
        if self.error is not None:
            return b""
        try:
            return next(self._blocks, b"")
        except Exception as exc:  # noqa: BLE001 - handed to the caller through self.error
            self.error = exc
            return b""
