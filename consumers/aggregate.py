"""Batch aggregation: decoded messages in, raw rows + minute partials + dead letters out.

Pure logic, no I/O: :func:`aggregate_batch` takes one batch of Kafka messages
(partition, offset, key, value) and returns everything the sink must make
durable. Per event there is one decode (:func:`pipeline.events.decode_fast`:
msgspec in C, pydantic only for what it cannot vouch for), the dedup and
watermark checks, and a few list appends; the event is never re-encoded. The
raw rows stay columns (:class:`RawRows`, inserted as one Arrow block) and the
minute partials are summed column-wise with numpy over the whole batch
(:func:`_partials`), in event order, so every float sum is the one the
event-by-event fold gave.

Exactness rules
---------------
* A partial row is keyed by (product, version, minute, source partition, first
  offset of this batch in that partition). Replaying the batch from the same
  offset rewrites the same keys, so ClickHouse's ReplacingMergeTree replaces
  instead of doubling.
* An ``event_id`` is counted at its first offset in its partition only
  (:class:`SeenIds`); a producer retry that wrote it twice counts once.
* Event time decides the minute. An event older than the partition's watermark
  (max event time seen - allowed lateness) is *late*: it still counts in its
  own minute, by a row with its batch's key, and is tallied in ``late_events``.
  An event further in the future than the allowed skew is dead-lettered, and so
  is one before 1970 or older than the maximum age (``past_ts``).
* An event without ``event_id`` gets one derived from its position (topic,
  partition, offset, index in pack), so every replay gives it the same id.
* Positions the store refused (``rejected``) are dead-lettered with the store's
  reason and left out of every row, so the partials agree with the raw rows.
"""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from itertools import islice
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from msgspec import UNSET

from pipeline.catalog.histogram import ZERO_BUCKET, bucket_of
from pipeline.events import (
    EVENT_ADAPTER,
    MAX_PACK_EVENTS,
    DecodeError,
    decode_many,
    encode_event,
    is_pack,
    position_event_id,
    properties_json,
    split_pack,
    utc_datetime,
)

Position = tuple[int, int, int]  # (partition, offset, index in pack) of one event

# --- the partial row ------------------------------------------------------------
# Counter columns of product_metrics_1m, in the order PartialRow keeps them.
COUNTERS: tuple[str, ...] = (
    "events",
    "late_events",
    "sessions_started",
    "sessions_ended",
    "sessions_ok",
    "sessions_exited",
    "sessions_crashed",
    "sessions_abnormal",
    "sessions_errored",
    "session_duration_ms_sum",
    "feature_uses",
    "feature_successes",
    "requests",
    "request_errors",
    "latency_ms_sum",
    "errors",
    "errors_unhandled",
    "conversions",
    "revenue",
    "nps_promoters",
    "nps_passives",
    "nps_detractors",
    "csat_sum",
    "csat_count",
    "tickets_opened",
    "tickets_resolved",
)
_C = {name: i for i, name in enumerate(COUNTERS)}
EVENTS, LATE = _C["events"], _C["late_events"]
FLOAT_COUNTERS = frozenset({"session_duration_ms_sum", "latency_ms_sum", "revenue"})
KEY_COLUMNS: tuple[str, ...] = ("product", "version", "minute", "src_partition", "batch_start")
PARTIAL_COLUMNS: tuple[str, ...] = KEY_COLUMNS + COUNTERS + ("latency_bucket", "latency_count")


class PartialKey(NamedTuple):
    product: str
    version: str
    minute: int  # epoch seconds, start of the event-time minute
    src_partition: int
    batch_start: int


class BreakdownKey(NamedTuple):
    """A partial of one feature or conversion goal: ``kind`` is "feature" or "goal"."""

    product: str
    version: str
    kind: str
    name: str
    minute: int
    src_partition: int
    batch_start: int


BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "product", "version", "kind", "name", "minute", "src_partition", "batch_start", "count", "ok", "value_sum",
)  # fmt: skip


@dataclass(slots=True)
class Partial:
    counters: list[float] = field(default_factory=lambda: [0] * len(COUNTERS))
    latency: dict[int, int] = field(default_factory=dict)


class Message(NamedTuple):
    """The parts of a Kafka message that aggregation needs."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: object = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One bad event: its message, its index inside a pack (0 for a lone event) and its bytes."""

    message: Message
    index: int
    value: bytes | None
    error: DecodeError


def unpack(msg: Message) -> list[bytes | None]:
    """The event payloads of a message: the lines of a pack, or the message itself."""
    return _payloads(msg.value, is_pack(msg.headers))


def _payloads(value: bytes | None, pack: bool) -> list[bytes | None]:
    if value is not None and pack:
        lines: list[bytes | None] = list(split_pack(value))
        return lines or [None]  # a pack of no events is one bad message, not none
    return [value]


# --- the raw rows ------------------------------------------------------------------
# The columns of `events` a batch writes (ingested_at is the table's default), with their Arrow types.
_STR, _F64, _BOOL = pa.string(), pa.float64(), pa.bool_()
RAW_SCHEMA = pa.schema([
    ("event_id", _STR), ("type", _STR), ("product", _STR), ("version", _STR), ("ts", pa.timestamp("ms", "UTC")),
    ("user_id", _STR), ("session_id", _STR), ("environment", _STR), ("platform", _STR), ("properties", pa.binary()),
    ("status", _STR), ("errors", pa.uint32()), ("duration_ms", _F64), ("feature", _STR), ("success", _BOOL),
    ("operation", _STR), ("latency_ms", _F64), ("status_code", pa.uint16()), ("error", _STR), ("kind", _STR),
    ("handled", _BOOL), ("goal", _STR), ("value", _F64), ("currency", _STR), ("score", pa.uint8()),
    ("ticket_id", _STR), ("action", _STR), ("severity", _STR),
    ("kafka_partition", pa.uint16()), ("kafka_offset", pa.uint64()), ("pack_index", pa.uint32()),
])  # fmt: skip
RAW_COLUMNS: tuple[str, ...] = tuple(RAW_SCHEMA.names)
# Type-specific columns: which event types carry them, and the column's value for every other type
# (the table's default, as when a JSON row leaves the field out).
_TYPED_COLUMNS: dict[str, tuple[tuple[str, ...], object]] = {
    "status": (("session_ended",), ""),
    "errors": (("session_ended",), 0),
    "duration_ms": (("session_ended", "feature_used"), 0.0),
    "feature": (("feature_used",), ""),
    "success": (("feature_used",), False),
    "operation": (("request",), ""),
    "latency_ms": (("request",), 0.0),
    "status_code": (("request",), 0),
    "error": (("request",), ""),
    "kind": (("error", "feedback"), ""),
    "handled": (("error",), False),
    "goal": (("conversion",), ""),
    "value": (("conversion",), 0.0),
    "currency": (("conversion",), ""),
    "score": (("feedback",), 0),
    "ticket_id": (("support_ticket",), ""),
    "action": (("support_ticket",), ""),
    "severity": (("support_ticket",), ""),
}
_ENVELOPE_COLUMNS = ("product", "version", "user_id", "session_id", "environment", "platform")


@dataclass(eq=False)
class DecodedBatch:
    """Stage one of a batch: every payload decoded, the valid events kept as columns - pure, no state.

    :func:`decode_batch` builds it without touching the dedup memory or the
    watermarks, so the worker builds the next batch's while the current one is
    being stored (:mod:`consumers.app`); :func:`aggregate_decoded` then decides
    which of its events are stored and counted. Payload ``j`` is line
    ``index[j]`` of ``messages[owner[j]]``; the valid ones are numbered in order
    (``valid``: payload of each), and every per-event list follows that numbering.
    """

    messages: Sequence[Message]
    raws: list[bytes | None] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # decode_many's answer per payload
    valid: list[int] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)  # pipeline.events.FAST_TYPES structs
    ids: list[uuid.UUID] = field(default_factory=list)  # the id each is stored under (derived if it had none)
    id_ints: list[int] = field(default_factory=list)  # the same ids as integers (the dedup memory's keys)
    ts: list[float] = field(default_factory=list)  # epoch seconds (the model's ts.timestamp())
    micros: list[int] = field(default_factory=list)  # ts in microseconds since the epoch
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # index in pack
    _arrow: pa.RecordBatch | None = None

    def position(self, v: int) -> Position:
        return self.partitions[v], self.offsets[v], self.indices[v]

    def payload(self, j: int) -> bytes | None:
        """The bytes of payload ``j`` (cut again from its message when the batch travelled without them)."""
        if self.raws:
            return self.raws[j]
        return unpack(self.messages[self.owner[j]])[self.index[j]]

    def arrow(self) -> pa.RecordBatch:
        """The valid events as one Arrow record batch in :data:`RAW_SCHEMA` (computed once; a portable batch has it)."""
        if self._arrow is None:
            cols = _raw_columns(self)
            arrays = [pa.array(cols[f.name], f.type) for f in RAW_SCHEMA]
            self._arrow = pa.RecordBatch.from_arrays(arrays, schema=RAW_SCHEMA)
        return self._arrow

    def prepare(self) -> DecodedBatch:
        """Build the columns and the Arrow batch now (the worker does it off the event loop)."""
        if self.events:
            self.arrow()
        return self

    def portable(self) -> DecodedBatch:
        """This batch as it crosses from a decode process: columns (Arrow) and plain lists, no objects per event.

        The messages and the payload bytes stay behind (the receiver holds the
        messages: :meth:`attach` them); so do the event structs, so
        :meth:`RawRows.json_row` cannot rebuild a row of a portable batch.
        """
        self.prepare()
        results = [r if type(r) is DecodeError else None for r in self.results]
        return replace(self, messages=(), raws=[], results=results, events=[], ids=[])

    def attach(self, messages: Sequence[Message]) -> DecodedBatch:
        """Give a portable batch back the messages it was decoded from."""
        self.messages = messages
        return self


PortableMessages = tuple[list[int], list[int], list[bytes | None], list[bool]]  # partitions, offsets, values, packs


def portable_messages(messages: Sequence[Message]) -> PortableMessages:
    """What decoding needs of the messages, as plain lists: they pickle ten times faster than Message tuples."""
    return (
        [m.partition for m in messages],
        [m.offset for m in messages],
        [m.value for m in messages],
        [bool(m.headers) and is_pack(m.headers) for m in messages],
    )


def decode_batch(messages: Sequence[Message], max_event_bytes: int, topic: str = "") -> DecodedBatch:
    """Decode and validate every event of a batch (stage one; see :class:`DecodedBatch`)."""
    return decode_messages(portable_messages(messages), max_event_bytes, topic).attach(messages)


def decode_portable(messages: PortableMessages, max_event_bytes: int, topic: str = "") -> DecodedBatch:
    """:func:`decode_messages` in a decode process: the answer is :meth:`DecodedBatch.portable`."""
    return decode_messages(messages, max_event_bytes, topic).portable()


def decode_messages(messages: PortableMessages, max_event_bytes: int, topic: str = "") -> DecodedBatch:
    """Decode and validate every event of messages given as :func:`portable_messages` (no messages attached)."""
    partitions, offsets, values, packs = messages
    out = DecodedBatch(())
    if not any(packs):  # lone events only: payload j is message j
        out.raws, out.owner, out.index = list(values), list(range(len(values))), [0] * len(values)
    else:
        raws, owner, index = out.raws, out.owner, out.index
        for m, (value, pack) in enumerate(zip(values, packs, strict=True)):
            lines = _payloads(value, pack)
            raws.extend(lines)
            owner.extend([m] * len(lines))
            index.extend(range(len(lines)))
    results = out.results = decode_many(out.raws, max_event_bytes)
    valid = out.valid = [j for j, r in enumerate(results) if type(r) is not DecodeError]
    if not valid:
        return out
    good: list[Any] = [results[j] for j in valid]
    events = out.events = list(map(itemgetter(0), good))
    out.ts = list(map(itemgetter(1), good))
    out.micros = list(map(itemgetter(2), good))
    owners = [out.owner[j] for j in valid]
    out.partitions = list(map(partitions.__getitem__, owners))
    out.offsets = list(map(offsets.__getitem__, owners))
    out.indices = list(map(out.index.__getitem__, valid))
    ids = out.ids = list(map(_EVENT_ID, events))
    for v, event_id in enumerate(ids):
        if event_id is UNSET:  # an event that came without one: its id is derived from its position
            ids[v] = position_event_id(topic, out.partitions[v], out.offsets[v], out.indices[v])
    out.id_ints = [u.int for u in ids]
    return out


_EVENT_ID = attrgetter("event_id")
_UUID_STRINGS = msgspec.json.Decoder(list[str])
_NUMPY_TYPES = {"errors": np.uint32, "duration_ms": np.float64, "success": np.bool_, "latency_ms": np.float64,
                "status_code": np.uint16, "handled": np.bool_, "value": np.float64, "score": np.uint8}  # fmt: skip


def _raw_columns(batch: DecodedBatch) -> dict[str, Any]:
    evs = batch.events
    n = len(evs)
    # msgspec writes UUIDs in C: one JSON array of their canonical strings, read back as a list of str
    types = [e.type for e in evs]
    cols: dict[str, Any] = {"event_id": _UUID_STRINGS.decode(msgspec.json.encode(batch.ids)), "type": types}
    for name in _ENVELOPE_COLUMNS:
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
    for name, (owners, default) in _TYPED_COLUMNS.items():
        dtype = _NUMPY_TYPES.get(name, object)
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


class RawRows:
    """The stored events of a batch: rows of a :class:`DecodedBatch`, never re-encoded; written as columns.

    Iterating gives each row as canonical JSON with its Kafka position first
    (``{"kafka_partition":..,"kafka_offset":..,"pack_index":..,<the event>}``),
    for tests and debugging; the sink writes :meth:`to_arrow` instead.
    """

    __slots__ = ("index", "source")

    def __init__(self, source: DecodedBatch | None = None, index: list[int] | None = None) -> None:
        self.source = source if source is not None else DecodedBatch(())
        self.index: list[int] = index if index is not None else []  # valid indices of `source`, in row order

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[bytes]:
        for k in range(len(self.index)):
            yield self.json_row(k)

    def __getitem__(self, k: int) -> bytes:
        return self.json_row(range(len(self.index))[k])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RawRows | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RawRows({len(self)} rows)"

    @property
    def positions(self) -> list[Position]:
        return list(map(self.source.position, self.index))

    @property
    def events(self) -> list[Any]:
        return [self.source.events[i] for i in self.index]

    def take(self, rows: Iterable[int]) -> RawRows:
        """The rows at positions ``rows`` of this one, in that order."""
        return RawRows(self.source, [self.index[k] for k in rows])

    def json_row(self, k: int) -> bytes:
        """Row ``k`` as the canonical JSON of its event (what :func:`encode_event` writes), position first."""
        src, i = self.source, self.index[k]
        if not src.events:
            raise LookupError("rows of a portable batch have no event objects to rebuild JSON from: use arrow_batch()")
        ev = src.events[i]
        fields = msgspec.structs.asdict(ev)
        fields.update(type=ev.type, event_id=src.ids[i], ts=utc_datetime(src.micros[i]))
        partition, offset, index = src.position(i)
        prefix = b'{"kafka_partition":%d,"kafka_offset":%d,"pack_index":%d,' % (partition, offset, index)
        return prefix + encode_event(EVENT_ADAPTER.validate_python(fields))[1:]  # type: ignore[arg-type]

    def arrow_batch(self) -> pa.RecordBatch:
        """The rows as an Arrow record batch in :data:`RAW_SCHEMA`."""
        batch = self.source.arrow()
        if len(self.index) != batch.num_rows:
            batch = batch.take(pa.array(self.index, pa.int64()))
        return batch

    def to_arrow(self) -> bytes:
        """The rows as one Arrow IPC stream (``FORMAT ArrowStream``), columns in :data:`RAW_COLUMNS` order."""
        return arrow_stream(self.arrow_batch())


def arrow_stream(batch: pa.RecordBatch) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue()


# --- the batch result ----------------------------------------------------------------
@dataclass
class PartialTable:
    """Minute partials of a batch, column-wise: one row per :class:`PartialKey`, in first-seen order."""

    keys: list[PartialKey] = field(default_factory=list)
    counters: dict[str, np.ndarray] = field(default_factory=dict)  # counter -> one value per key
    latency_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # key i: [o[i], o[i+1])
    latency_buckets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    latency_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))

    def __len__(self) -> int:
        return len(self.keys)

    def to_arrow(self) -> bytes:
        k = self.keys
        arrays = [
            pa.array([x.product for x in k], _STR),
            pa.array([x.version for x in k], _STR),
            pa.array([x.minute for x in k], pa.timestamp("s", "UTC")),
            pa.array([x.src_partition for x in k], pa.uint16()),
            pa.array([x.batch_start for x in k], pa.uint64()),
        ]
        for name in COUNTERS:
            values = self.counters[name]
            arrays.append(pa.array(values, _F64 if name in FLOAT_COUNTERS else pa.uint64()))
        offsets = pa.array(self.latency_offsets.astype(np.int32))
        arrays.append(pa.ListArray.from_arrays(offsets, pa.array(self.latency_buckets, pa.int16())))
        arrays.append(pa.ListArray.from_arrays(offsets, pa.array(self.latency_counts, pa.uint64())))
        return arrow_stream(pa.RecordBatch.from_arrays(arrays, names=list(PARTIAL_COLUMNS)))


@dataclass
class BreakdownTable:
    """Feature and goal partials of a batch, column-wise: one row per :class:`BreakdownKey`."""

    keys: list[BreakdownKey] = field(default_factory=list)
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    ok: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    value_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.keys)

    def to_arrow(self) -> bytes:
        k = self.keys
        arrays = [
            pa.array([x.product for x in k], _STR),
            pa.array([x.version for x in k], _STR),
            pa.array([x.kind for x in k], _STR),
            pa.array([x.name for x in k], _STR),
            pa.array([x.minute for x in k], pa.timestamp("s", "UTC")),
            pa.array([x.src_partition for x in k], pa.uint16()),
            pa.array([x.batch_start for x in k], pa.uint64()),
            pa.array(self.count, pa.uint64()),
            pa.array(self.ok, pa.uint64()),
            pa.array(self.value_sum, _F64),
        ]
        return arrow_stream(pa.RecordBatch.from_arrays(arrays, names=list(BREAKDOWN_COLUMNS)))


@dataclass
class BatchResult:
    raw_rows: RawRows = field(default_factory=RawRows)
    partial_table: PartialTable = field(default_factory=PartialTable)
    breakdown_table: BreakdownTable = field(default_factory=BreakdownTable)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    products: dict[str, int] = field(default_factory=dict)

    @cached_property
    def partials(self) -> dict[PartialKey, Partial]:
        """The minute partials as one :class:`Partial` per key (for tests and tools; the sink writes columns)."""
        t = self.partial_table
        out: dict[PartialKey, Partial] = {}
        for i, key in enumerate(t.keys):
            counters: list[float] = [
                float(t.counters[n][i]) if n in FLOAT_COUNTERS else int(t.counters[n][i]) for n in COUNTERS
            ]
            lo, hi = int(t.latency_offsets[i]), int(t.latency_offsets[i + 1])
            latency = {int(b): int(c) for b, c in zip(t.latency_buckets[lo:hi], t.latency_counts[lo:hi], strict=True)}
            out[key] = Partial(counters, latency)
        return out

    @cached_property
    def breakdown(self) -> dict[BreakdownKey, list[float]]:
        """The breakdown partials as ``key -> [count, ok, value_sum]``."""
        t = self.breakdown_table
        return {key: [int(t.count[i]), int(t.ok[i]), float(t.value_sum[i])] for i, key in enumerate(t.keys)}

    def partial_columns(self) -> list[list[object]]:
        """product_metrics_1m rows as columns (in :data:`PARTIAL_COLUMNS` order)."""
        cols: list[list[object]] = [[] for _ in PARTIAL_COLUMNS]
        n_key, n_counters = len(KEY_COLUMNS), len(COUNTERS)
        for key, part in self.partials.items():
            for i in range(n_key):
                cols[i].append(key[i])
            cols[2][-1] = datetime.fromtimestamp(key.minute, tz=UTC)
            for i in range(n_counters):
                cols[n_key + i].append(part.counters[i])
            buckets = sorted(part.latency)
            cols[-2].append(buckets)
            cols[-1].append([part.latency[b] for b in buckets])
        return cols

    def breakdown_columns(self) -> list[list[object]]:
        """breakdown_metrics_1m rows as columns (in :data:`BREAKDOWN_COLUMNS` order)."""
        cols: list[list[object]] = [[] for _ in BREAKDOWN_COLUMNS]
        for key, tally in self.breakdown.items():
            for i, v in enumerate(key):
                cols[i].append(v)
            cols[4][-1] = datetime.fromtimestamp(key.minute, tz=UTC)
            for i, v in enumerate(tally):
                cols[7 + i].append(v)
        return cols


class SeenIds:
    """Which event_ids were seen at which position, per partition, bounded in size.

    ``first(partition, position, id)`` is True when no earlier position of the
    partition carried the same id - whether this is a first delivery or a
    replay of that first delivery - so the answer for a message does not depend
    on how often it was processed. :meth:`first_many` answers a whole batch of
    one partition in one pass (dict look-ups and updates in C); the oldest ids
    are forgotten past ``capacity`` after each call, from the partition that
    remembers the most.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._size = 0
        self._seen: dict[int, dict[int, int]] = {}  # partition -> {event_id: first position}

    def __len__(self) -> int:
        return self._size

    def first(self, partition: int, position: int, event_id: int) -> bool:
        return self.first_many(partition, [position], [event_id])[0]

    def first_many(self, partition: int, positions: Sequence[int], ids: Sequence[int]) -> list[bool]:
        """:meth:`first` of each (position, id) in order: the same answers as calling it one by one."""
        seen = self._seen.setdefault(partition, {})
        before = len(seen)
        if len(set(ids)) == len(ids):  # the usual batch: every answer is independent of the others
            prev = list(map(seen.get, ids))
            answers = [p is None or p >= pos for p, pos in zip(prev, positions, strict=True)]
            seen.update([(i, pos) for i, pos, p in zip(ids, positions, prev, strict=True) if p is None or p > pos])
        else:  # an id repeats inside the batch: the first occurrence decides the later ones
            answers = [_first_in(seen, pos, i) for pos, i in zip(positions, ids, strict=True)]
        self._size += len(seen) - before
        self._evict()
        return answers

    def _evict(self) -> None:
        excess = self._size - max(self.capacity, 0)
        while excess > 0:
            by_size = sorted(self._seen.values(), key=len, reverse=True)
            largest = by_size[0]
            runner_up = len(by_size[1]) if len(by_size) > 1 else 0
            k = min(excess, max(1, len(largest) - runner_up))
            for key in list(islice(largest, k)):
                del largest[key]
            self._size -= k
            excess -= k

    def forget(self, partition: int) -> None:
        """Drop a partition's ids (it was revoked; its next owner warms up from ClickHouse)."""
        self._size -= len(self._seen.pop(partition, {}))

    def remember(self, partition: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Warm up from (event_id, position) pairs already stored for ``partition``."""
        pairs = list(pairs)
        self.first_many(partition, [pos for _, pos in pairs], [i for i, _ in pairs])


def _first_in(seen: dict[int, int], position: int, event_id: int) -> bool:
    prev = seen.get(event_id)
    if prev is not None and prev < position:
        return False
    seen[event_id] = position
    return True


@dataclass
class Watermarks:
    """Per-partition max event time; an event older than it minus lateness is late."""

    allowed_lateness_s: float
    max_ts: dict[int, float] = field(default_factory=dict)

    def watermark(self, partition: int) -> float:
        return self.max_ts.get(partition, float("-inf")) - self.allowed_lateness_s


def aggregate_batch(
    messages: Sequence[Message],
    seen: SeenIds,
    watermarks: Watermarks,
    now_s: float,
    max_event_bytes: int,
    max_future_skew_s: float,
    max_age_s: float = math.inf,
    topic: str = "",
    rejected: Mapping[Position, str] | None = None,
) -> BatchResult:
    """Decode, validate, dedup and aggregate one batch (messages in offset order per partition).

    ``topic`` names the source topic for ids derived from positions;
    ``rejected`` maps (partition, offset, index) to the store's reason for
    refusing that event's row (see :meth:`consumers.ingest.Ingestor.process`).
    The two stages, :func:`decode_batch` and :func:`aggregate_decoded`, in one call.
    """
    decoded = decode_batch(messages, max_event_bytes, topic)
    return aggregate_decoded(decoded, seen, watermarks, now_s, max_future_skew_s, max_age_s, rejected)


def aggregate_decoded(
    batch: DecodedBatch,
    seen: SeenIds,
    watermarks: Watermarks,
    now_s: float,
    max_future_skew_s: float,
    max_age_s: float = math.inf,
    rejected: Mapping[Position, str] | None = None,
) -> BatchResult:
    """Stage two: event time bounds, dedup, watermarks and the partials of a decoded batch, in event order.

    Every decision is taken for the whole batch at once (numpy masks, one
    :meth:`SeenIds.first_many` per partition, running maxima per partition for
    the watermarks) and equals the one the event-by-event loop took.
    """
    out = BatchResult()
    batch_start: dict[int, int] = {}
    for msg in batch.messages:
        batch_start.setdefault(msg.partition, msg.offset)
    n = len(batch.valid)
    ts = np.array(batch.ts, np.float64)
    partitions = np.array(batch.partitions, np.int64)
    dead: list[tuple[int, DeadLetter]] = []  # (payload, dead letter): sorted into payload order below
    if n < len(batch.results):
        for j, r in enumerate(batch.results):
            if type(r) is DecodeError:
                dead.append((j, DeadLetter(batch.messages[batch.owner[j]], batch.index[j], batch.payload(j), r)))

    def refuse(rows: np.ndarray, error: Callable[[int], DecodeError]) -> None:
        for v in rows.tolist():
            j = batch.valid[v]
            dead.append((j, DeadLetter(batch.messages[batch.owner[j]], batch.indices[v], batch.payload(j), error(v))))

    def when(v: int) -> str:
        return utc_datetime(batch.micros[v]).isoformat()

    keep = np.ones(n, np.bool_)
    if rejected:
        refused = np.array([batch.position(v) in rejected for v in range(n)], np.bool_)
        refuse(np.flatnonzero(refused), lambda v: DecodeError("rejected_by_store", rejected[batch.position(v)]))
        keep &= ~refused
    future = keep & (ts > now_s + max_future_skew_s)
    ahead = f"{max_future_skew_s:.0f}s ahead of now"
    refuse(np.flatnonzero(future), lambda v: DecodeError("future_ts", f"ts {when(v)} is more than {ahead}"))
    keep &= ~future
    past_limit = max(0.0, now_s - max_age_s)  # nothing before 1970: the store's DateTime columns cannot hold it
    past = keep & (ts < past_limit)
    oldest = f"before {_iso(past_limit)}, the oldest event time kept"
    refuse(np.flatnonzero(past), lambda v: DecodeError("past_ts", f"ts {when(v)} is {oldest}"))
    keep &= ~past
    dead.sort(key=itemgetter(0))
    out.dead = [letter for _, letter in dead]

    # Dedup, then watermarks, per partition (partitions never interact); the rows stay in event order.
    candidates = np.flatnonzero(keep)
    stored_mask = np.zeros(n, np.bool_)
    late = np.zeros(n, np.bool_)
    positions = np.array(batch.offsets, np.int64) * MAX_PACK_EVENTS + np.array(batch.indices, np.int64)
    id_ints = batch.id_ints
    for partition in np.unique(partitions[candidates]).tolist():
        rows = candidates[partitions[candidates] == partition]
        first = seen.first_many(partition, positions[rows].tolist(), list(map(id_ints.__getitem__, rows.tolist())))
        rows = rows[np.array(first, np.bool_)]
        stored_mask[rows] = True
        if not len(rows):
            continue
        high = watermarks.max_ts.get(partition, -math.inf)
        running = np.maximum.accumulate(ts[rows])
        before = np.maximum(np.concatenate(([high], running[:-1])), high)  # the partition's max before each row
        late[rows] = ts[rows] < before - watermarks.allowed_lateness_s
        watermarks.max_ts[partition] = float(max(high, running[-1]))
    out.duplicates = len(candidates) - int(stored_mask.sum())

    stored = np.flatnonzero(stored_mask)
    rows = out.raw_rows = RawRows(batch, stored.tolist())
    if len(stored):
        out.late = int(late[stored].sum())
        cols = rows.arrow_batch()
        product = pc.dictionary_encode(cols.column("product"))
        out.products = dict(zip(product.dictionary.to_pylist(), _counts(product.indices), strict=True))
        keys, kid = _partial_keys(rows, product, batch_start)
        out.partial_table = _partials(cols, keys, kid, late[stored])
        out.breakdown_table = _breakdown(cols, keys, kid)
    return out


def _counts(indices: pa.Array) -> list[int]:
    return np.bincount(indices.to_numpy(zero_copy_only=False)).tolist()


def _first_seen_groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal codes: (first row of each group, group of each row), groups numbered in first-seen order."""
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.reshape(-1)]


def _codes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
    """Dense integer codes of a column's values (equal values, equal codes) and how many there are."""
    encoded = pc.dictionary_encode(column)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


def _partial_keys(
    rows: RawRows, product: pa.DictionaryArray, batch_start: dict[int, int]
) -> tuple[list[PartialKey], np.ndarray]:
    """Each stored row's partial key: (product, version, minute, partition, batch start), numbered first-seen."""
    cols = rows.arrow_batch()
    ts = np.array(rows.source.ts)[np.array(rows.index, np.int64)] if rows.index else np.zeros(0)
    minute = (np.floor(ts) // 60 * 60).astype(np.int64)  # math.floor(ts) // 60 * 60, exactly: |ts| < 2**53
    partition = cols.column("kafka_partition").to_numpy().astype(np.int64)
    p_codes = product.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    v_codes, n_v = _codes(cols.column("version"))
    m_codes, n_m = _codes(pa.array(minute))
    q_codes, n_q = _codes(pa.array(partition))
    first, kid = _first_seen_groups(((p_codes * n_v + v_codes) * n_m + m_codes) * n_q + q_codes)
    at = pa.array(first)
    parts = partition[first].tolist()
    fields = zip(
        cols.column("product").take(at).to_pylist(),
        cols.column("version").take(at).to_pylist(),
        minute[first].tolist(),
        parts,
        [batch_start[p] for p in parts],
        strict=True,
    )
    return [tuple.__new__(PartialKey, f) for f in fields], kid


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


_BUCKET_SPAN = 4096  # bucket_of spans ZERO_BUCKET..~915 for latencies up to one day


def _partials(cols: pa.RecordBatch, keys: list[PartialKey], kid: np.ndarray, late: np.ndarray) -> PartialTable:
    """Sum every counter per key with ``np.bincount``: a sequential sum in event order, like the fold it replaces."""
    n_keys = len(keys)

    def col(name: str) -> np.ndarray:
        return cols.column(name).to_numpy(zero_copy_only=False)

    def eq(name: str, value: str) -> np.ndarray:
        return pc.equal(cols.column(name), value).to_numpy(zero_copy_only=False)

    types = cols.column("type")

    def mask(t: str) -> np.ndarray:
        return pc.equal(types, t).to_numpy(zero_copy_only=False)

    errors, duration, success = col("errors"), col("duration_ms"), col("success")
    latency, status_code, handled = col("latency_ms"), col("status_code"), col("handled")
    value, score = col("value"), col("score").astype(np.int64)
    ended, feature, request = mask("session_ended"), mask("feature_used"), mask("request")
    err, conversion, feedback, ticket = mask("error"), mask("conversion"), mask("feedback"), mask("support_ticket")
    nps, csat = feedback & eq("kind", "nps"), feedback & eq("kind", "csat")
    opened = eq("action", "opened")
    weights: dict[str, np.ndarray | None] = {
        "events": None,
        "late_events": late,
        "sessions_started": mask("session_started"),
        "sessions_ended": ended,
        "sessions_ok": ended & eq("status", "ok"),
        "sessions_exited": ended & eq("status", "exited"),
        "sessions_crashed": ended & eq("status", "crashed"),
        "sessions_abnormal": ended & eq("status", "abnormal"),
        "sessions_errored": ended & (errors > 0) & ~eq("status", "crashed"),
        "session_duration_ms_sum": np.where(ended, duration, 0.0),
        "feature_uses": feature,
        "feature_successes": feature & success,
        "requests": request,
        "request_errors": request & (~eq("error", "") | (status_code >= 500)),
        "latency_ms_sum": np.where(request, latency, 0.0),
        "errors": err,
        "errors_unhandled": err & ~handled,
        "conversions": conversion,
        "revenue": np.where(conversion, value, 0.0),
        "nps_promoters": nps & (score >= 9),
        "nps_passives": nps & (score >= 7) & (score < 9),
        "nps_detractors": nps & (score < 7),
        "csat_sum": np.where(csat, score, 0),
        "csat_count": csat,
        "tickets_opened": ticket & opened,
        "tickets_resolved": ticket & ~opened,
    }
    counters: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        sums = np.bincount(kid, weights=None if w is None else w.astype(np.float64), minlength=n_keys)
        counters[name] = sums if name in FLOAT_COUNTERS else sums.astype(np.uint64)

    # Latency histogram: (key, bucket) pairs counted, sorted by key then bucket.
    req = np.flatnonzero(request)
    buckets = np.array([bucket_of(x) for x in latency[req].tolist()], np.int64) - ZERO_BUCKET
    if len(buckets) and (buckets.min() < 0 or buckets.max() >= _BUCKET_SPAN):
        raise ValueError("latency bucket outside the histogram's range")
    pairs, counts = np.unique(kid[req] * _BUCKET_SPAN + buckets, return_counts=True)
    per_key = np.bincount(pairs // _BUCKET_SPAN, minlength=n_keys)
    offsets = np.zeros(n_keys + 1, np.int64)
    np.cumsum(per_key, out=offsets[1:])
    return PartialTable(
        keys=keys,
        counters=counters,
        latency_offsets=offsets,
        latency_buckets=(pairs % _BUCKET_SPAN + ZERO_BUCKET).astype(np.int16),
        latency_counts=counts.astype(np.uint64),
    )


def _breakdown(cols: pa.RecordBatch, keys: list[PartialKey], kid: np.ndarray) -> BreakdownTable:
    """Per feature and per conversion goal: count, successes and the summed duration or value."""
    types = cols.column("type")
    is_feature = pc.equal(types, "feature_used")
    rows = np.flatnonzero(pc.or_(is_feature, pc.equal(types, "conversion")).to_numpy(zero_copy_only=False))
    if not len(rows):
        return BreakdownTable()
    take = pa.array(rows)
    feature = is_feature.take(take).to_numpy(zero_copy_only=False)
    names = pc.if_else(feature, cols.column("feature").take(take), cols.column("goal").take(take))
    ok = np.where(feature, cols.column("success").take(take).to_numpy(zero_copy_only=False), True)
    amount = np.where(
        feature,
        cols.column("duration_ms").take(take).to_numpy(zero_copy_only=False),
        cols.column("value").take(take).to_numpy(zero_copy_only=False),
    )
    n_codes, n_names = _codes(names)
    first, bid = _first_seen_groups((kid[rows] * n_names + n_codes) * 2 + feature)
    name_list = names.take(pa.array(first)).to_pylist()
    bkeys = []
    for name, i, f in zip(name_list, kid[rows][first].tolist(), feature[first].tolist(), strict=True):
        k = keys[i]
        kind = "feature" if f else "goal"
        bkeys.append(BreakdownKey(k.product, k.version, kind, name, k.minute, k.src_partition, k.batch_start))
    n = len(bkeys)
    return BreakdownTable(
        keys=bkeys,
        count=np.bincount(bid, minlength=n).astype(np.uint64),
        ok=np.bincount(bid, weights=ok.astype(np.float64), minlength=n).astype(np.uint64),
        value_sum=np.bincount(bid, weights=amount.astype(np.float64), minlength=n),
    )
