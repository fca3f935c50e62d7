"""Batch aggregation: decoded messages in, raw rows + minute partials + dead letters out.

Pure logic, no I/O: :func:`aggregate_batch` takes one batch of Kafka messages
(partition, offset, key, value) and returns everything the sink must make
durable. Work per event is one decode plus a few dictionary updates; rows are
built column-wise for a single insert per table.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from pipeline.catalog.histogram import bucket_of
from pipeline.events import (
    MAX_PACK_EVENTS,
    Conversion,
    DecodeError,
    Error,
    Event,
    FeatureUsed,
    Feedback,
    Request,
    SessionEnded,
    SessionStarted,
    SupportTicket,
    decode_event,
    encode_event,
    is_pack,
    position_event_id,
    split_pack,
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
SESSION_STATUS = {s: _C[f"sessions_{s}"] for s in ("ok", "exited", "crashed", "abnormal")}
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
    if msg.value is not None and is_pack(msg.headers):
        lines: list[bytes | None] = list(split_pack(msg.value))
        return lines or [None]  # a pack of no events is one bad message, not none
    return [msg.value]


@dataclass
class BatchResult:
    raw_rows: list[bytes] = field(default_factory=list)
    partials: dict[PartialKey, Partial] = field(default_factory=dict)
    breakdown: dict[BreakdownKey, list[float]] = field(default_factory=dict)  # [count, ok, value_sum]
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    products: dict[str, int] = field(default_factory=dict)

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
    """Which event_ids were seen at which offset, per partition, bounded in size.

    ``first(partition, offset, id)`` is True when no earlier offset of the
    partition carried the same id - whether this is a first delivery or a
    replay of that first delivery - so the answer for a message does not depend
    on how often it was processed. Oldest ids are forgotten past ``capacity``.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._size = 0
        self._seen: dict[int, dict[int, int]] = {}  # partition -> {event_id: first offset}

    def __len__(self) -> int:
        return self._size

    def first(self, partition: int, offset: int, event_id: int) -> bool:
        seen = self._seen.get(partition)
        if seen is None:
            seen = self._seen[partition] = {}
        prev = seen.get(event_id)
        if prev is not None:
            if prev < offset:
                return False
            seen[event_id] = offset
            return True
        if self.capacity <= 0:
            return True
        if self._size >= self.capacity:
            oldest = max(self._seen.values(), key=len)
            del oldest[next(iter(oldest))]
            self._size -= 1
        seen[event_id] = offset
        self._size += 1
        return True

    def forget(self, partition: int) -> None:
        """Drop a partition's ids (it was revoked; its next owner warms up from ClickHouse)."""
        self._size -= len(self._seen.pop(partition, {}))

    def remember(self, partition: int, pairs: Iterable[tuple[int, int]]) -> None:
        """Warm up from (event_id, offset) pairs already stored for ``partition``."""
        for event_id, offset in pairs:
            self.first(partition, offset, event_id)


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
    """
    out = BatchResult()
    batch_start: dict[int, int] = {}
    future_limit = now_s + max_future_skew_s
    past_limit = max(0.0, now_s - max_age_s)  # nothing before 1970: the store's DateTime columns cannot hold it
    raw_rows = out.raw_rows
    max_ts = watermarks.max_ts
    lateness = watermarks.allowed_lateness_s

    for msg in messages:
        partition, offset = msg.partition, msg.offset
        start = batch_start.setdefault(partition, offset)
        for index, value in enumerate(unpack(msg)):
            ev = decode_event(value, max_event_bytes)
            if isinstance(ev, DecodeError):
                out.dead.append(DeadLetter(msg, index, value, ev))
                continue
            if rejected and (partition, offset, index) in rejected:
                reason = rejected[partition, offset, index]
                out.dead.append(DeadLetter(msg, index, value, DecodeError("rejected_by_store", reason)))
                continue
            if "event_id" not in ev.model_fields_set:
                ev = ev.model_copy(update={"event_id": position_event_id(topic, partition, offset, index)})
            ts = ev.ts.timestamp()
            if ts > future_limit:
                detail = f"ts {ev.ts.isoformat()} is more than {max_future_skew_s:.0f}s ahead of now"
                out.dead.append(DeadLetter(msg, index, value, DecodeError("future_ts", detail)))
                continue
            if ts < past_limit:
                detail = f"ts {ev.ts.isoformat()} is before {_iso(past_limit)}, the oldest event time kept"
                out.dead.append(DeadLetter(msg, index, value, DecodeError("past_ts", detail)))
                continue
            if not seen.first(partition, offset * MAX_PACK_EVENTS + index, ev.event_id.int):
                out.duplicates += 1
                continue
            raw_rows.append(
                b'{"kafka_partition":%d,"kafka_offset":%d,"pack_index":%d,' % (partition, offset, index)
                + encode_event(ev)[1:]
            )
            _add(
                out,
                ev,
                ts,
                PartialKey(ev.product, ev.version, math.floor(ts) // 60 * 60, partition, start),
                max_ts,
                lateness,
            )
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _add(out: BatchResult, ev: Event, ts: float, key: PartialKey, max_ts: dict[int, float], lateness: float) -> None:
    """Fold one valid, first-seen event into its minute partial."""
    out.products[key.product] = out.products.get(key.product, 0) + 1
    part = out.partials.get(key)
    if part is None:
        part = out.partials[key] = Partial()
    c = part.counters
    c[EVENTS] += 1
    high = max_ts.get(key.src_partition)
    if high is None or ts > high:
        max_ts[key.src_partition] = ts
    elif ts < high - lateness:
        c[LATE] += 1
        out.late += 1
    _count(ev, c, part.latency)
    if isinstance(ev, FeatureUsed):
        _tally(out, key, "feature", ev.feature, ev.success, ev.duration_ms)
    elif isinstance(ev, Conversion):
        _tally(out, key, "goal", ev.goal, True, ev.value)


def _tally(out: BatchResult, key: PartialKey, kind: str, name: str, ok: bool, value: float) -> None:
    bkey = BreakdownKey(key.product, key.version, kind, name, key.minute, key.src_partition, key.batch_start)
    tally = out.breakdown.get(bkey)
    if tally is None:
        tally = out.breakdown[bkey] = [0, 0, 0.0]
    tally[0] += 1
    tally[1] += ok
    tally[2] += value


def _count(ev: Event, c: list[float], latency: dict[int, int]) -> None:
    """Add one event's contribution to a partial's counters."""
    if isinstance(ev, Request):
        c[_C["requests"]] += 1
        if ev.failed:
            c[_C["request_errors"]] += 1
        c[_C["latency_ms_sum"]] += ev.latency_ms
        b = bucket_of(ev.latency_ms)
        latency[b] = latency.get(b, 0) + 1
    elif isinstance(ev, SessionStarted):
        c[_C["sessions_started"]] += 1
    elif isinstance(ev, SessionEnded):
        c[_C["sessions_ended"]] += 1
        c[SESSION_STATUS[ev.status]] += 1
        if ev.errors > 0 and ev.status != "crashed":
            c[_C["sessions_errored"]] += 1
        c[_C["session_duration_ms_sum"]] += ev.duration_ms
    elif isinstance(ev, FeatureUsed):
        c[_C["feature_uses"]] += 1
        if ev.success:
            c[_C["feature_successes"]] += 1
    elif isinstance(ev, Error):
        c[_C["errors"]] += 1
        if not ev.handled:
            c[_C["errors_unhandled"]] += 1
    elif isinstance(ev, Conversion):
        c[_C["conversions"]] += 1
        c[_C["revenue"]] += ev.value
    elif isinstance(ev, Feedback):
        if ev.kind == "nps":
            bucket = "nps_promoters" if ev.score >= 9 else "nps_passives" if ev.score >= 7 else "nps_detractors"
            c[_C[bucket]] += 1
        else:
            c[_C["csat_sum"]] += ev.score
            c[_C["csat_count"]] += 1
    elif isinstance(ev, SupportTicket):
        c[_C["tickets_opened" if ev.action == "opened" else "tickets_resolved"]] += 1
