"""The raw rows of a batch: the columns of ClickHouse's ``events`` table, built column-wise and sent as Arrow.

:data:`RAW_SCHEMA` is the Arrow schema of the columns a batch writes
(``ingested_at`` is the table's default) and :data:`TYPED_COLUMNS` says which
event types carry each type-specific column and what every other type stores
there; both come from the one declarative table of event fields
(:mod:`pipeline.schema`), as do the ``events`` DDL and the decoders. :func:`raw_columns` reads the decoded events
of a batch into those columns with C-level getters (one pass per column and
type, never per event and field in Python), and :class:`RawRows` is the stored
subset of a batch's events - rows of a :class:`~consumers.decode.DecodedBatch`,
never re-encoded - as one Arrow IPC stream for ``FORMAT ArrowStream``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumers.records import Position
from pipeline.events import properties_json
from pipeline.schema import ENVELOPE_COLUMNS, NUMPY_DTYPES, TYPED_COLUMNS, raw_arrow_schema

if TYPE_CHECKING:
    from consumers.decode import DecodedBatch

RAW_SCHEMA = raw_arrow_schema()  # the columns of `events` a batch writes, derived from pipeline.schema
_UUID_STRINGS = msgspec.json.Decoder(list[str])


def raw_columns(batch: DecodedBatch) -> dict[str, Any]:
    """The valid events of a decoded batch as the columns of :data:`RAW_SCHEMA` (lists or numpy arrays)."""
    evs = batch.events
    n = len(evs)
    # msgspec writes UUIDs in C: one JSON array of their canonical strings, read back as a list of str
    types = [e.type for e in evs]
    cols: dict[str, Any] = {"event_id": _UUID_STRINGS.decode(msgspec.json.encode(batch.ids)), "type": types}
    for name in ENVELOPE_COLUMNS:
        cols[name] = list(map(attrgetter(name), evs))
    cols["ts"] = np.array(batch.micros, np.int64) // 1000  # DateTime64(3) keeps milliseconds, rounded down
    cols["properties"] = [b"{}" if not p else properties_json(p) for p in map(attrgetter("properties"), evs)]
    # Type-specific fields: read per type with C-level getters, then placed at that type's rows.
    type_codes = pa.array(types, pa.string())
    rows_of: dict[str, np.ndarray] = {}
    events_of: dict[str, list[Any]] = {}
    for t in set(types):
        rows = np.flatnonzero(pc.equal(type_codes, t).to_numpy(zero_copy_only=False))
        rows_of[t], events_of[t] = rows, list(map(evs.__getitem__, rows.tolist()))
    for name, (owners, default) in TYPED_COLUMNS.items():
        dtype = NUMPY_DTYPES.get(name, object)
        col: np.ndarray = np.full(n, default, dtype=dtype)
        for t in owners:
            if t in rows_of:
                values = list(map(attrgetter(name), events_of[t]))
                col[rows_of[t]] = values if dtype is object else np.array(values, dtype=dtype)
        cols[name] = col
    cols["kafka_partition"] = np.array(batch.partitions, np.uint16)
    cols["kafka_offset"] = np.array(batch.offsets, np.uint64)
    cols["pack_index"] = np.array(batch.indices, np.uint32)
    return cols


def raw_record_batch(batch: DecodedBatch) -> pa.RecordBatch:
    """The valid events of a decoded batch as one Arrow record batch in :data:`RAW_SCHEMA`."""
    cols = raw_columns(batch)
    return pa.RecordBatch.from_arrays([pa.array(cols[f.name], f.type) for f in RAW_SCHEMA], schema=RAW_SCHEMA)


class RawRows:
    """The stored events of a batch: rows of a :class:`~consumers.decode.DecodedBatch`, written as columns.

    ``index`` lists the batch's valid-event numbers in row order; an empty
    ``RawRows()`` has no source and no rows.
    """

    __slots__ = ("index", "source")

    def __init__(self, source: DecodedBatch | None = None, index: list[int] | None = None) -> None:
        self.source = source
        self.index: list[int] = index if index is not None else []  # valid indices of `source`, in row order

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return f"RawRows({len(self)} rows)"

    @property
    def positions(self) -> list[Position]:
        if self.source is None:
            return []
        return list(map(self.source.position, self.index))

    def take(self, rows: Iterable[int]) -> RawRows:
        """The rows at positions ``rows`` of this one, in that order."""
        return RawRows(self.source, [self.index[k] for k in rows])

    def arrow_batch(self) -> pa.RecordBatch:
        """The rows as an Arrow record batch in :data:`RAW_SCHEMA`."""
        if self.source is None:
            return pa.RecordBatch.from_pylist([], schema=RAW_SCHEMA)
        batch = self.source.arrow()
        if len(self.index) != batch.num_rows:
            batch = batch.take(pa.array(self.index, pa.int64()))
        return batch

    def to_arrow(self) -> bytes:
        """The rows as one Arrow IPC stream (``FORMAT ArrowStream``), columns in :data:`RAW_SCHEMA` order."""
        return arrow_stream(self.arrow_batch())


def arrow_stream(batch: pa.RecordBatch) -> bytes:
    """One record batch as an Arrow IPC stream (what ``FORMAT ArrowStream`` inserts read)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()
