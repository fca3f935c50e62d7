"""Test-side views of a batch's results: the shapes the tests assert on, built from what the worker writes.

The worker keeps a batch column-wise (:class:`consumers.rows.RawRows`,
:class:`consumers.partials.PartialTable`) and never needs these views; the
tests read rows as canonical JSON and partials as one record per key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from consumers.aggregate import BatchResult, aggregate_decoded
from consumers.decode import decode_batch
from consumers.dedup import SeenIds, Watermarks
from consumers.partials import COUNTERS, FLOAT_COUNTERS, BreakdownKey, PartialKey
from consumers.records import Message, Position
from consumers.rows import RawRows
from pipeline.events import EVENT_ADAPTER, encode_event, utc_datetime


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
    """Both stages of a batch in this process: :func:`decode_batch`, then :func:`aggregate_decoded`."""
    decoded = decode_batch(messages, max_event_bytes, topic)
    return aggregate_decoded(decoded, seen, watermarks, now_s, max_future_skew_s, max_age_s, rejected)


def first(seen: SeenIds, partition: int, position: int, event_id: int) -> bool:
    """Whether one (position, id) of ``partition`` is the id's first position (one call of ``first_many``)."""
    return seen.first_many(partition, [position], [event_id])[0]


def json_row(rows: RawRows, k: int) -> bytes:
    """Row ``k`` as the canonical JSON of its event (what ``encode_event`` writes), its Kafka position first."""
    src, i = rows.source, rows.index[k]
    assert src is not None and src.events, "rows of a portable batch have no event objects to rebuild JSON from"
    ev = src.events[i]
    fields = msgspec.structs.asdict(ev)
    fields.update(type=ev.type, event_id=src.ids[i], ts=utc_datetime(src.micros[i]))
    partition, offset, index = src.position(i)
    prefix = b'{"kafka_partition":%d,"kafka_offset":%d,"pack_index":%d,' % (partition, offset, index)
    return prefix + encode_event(EVENT_ADAPTER.validate_python(fields))[1:]


def json_rows(rows: RawRows) -> list[bytes]:
    """Every row as :func:`json_row`."""
    return [json_row(rows, k) for k in range(len(rows))]


@dataclass(slots=True)
class Partial:
    """One minute partial: its counters in :data:`COUNTERS` order and its latency histogram (bucket -> count)."""

    counters: list[float] = field(default_factory=lambda: [0] * len(COUNTERS))
    latency: dict[int, int] = field(default_factory=dict)


def partials(result: BatchResult) -> dict[PartialKey, Partial]:
    """The minute partials of a batch as one :class:`Partial` per key, in first-seen order."""
    t = result.partial_table
    out: dict[PartialKey, Partial] = {}
    for i, key in enumerate(t.keys):
        counters: list[float] = [
            float(t.counters[n][i]) if n in FLOAT_COUNTERS else int(t.counters[n][i]) for n in COUNTERS
        ]
        lo, hi = int(t.latency_offsets[i]), int(t.latency_offsets[i + 1])
        latency = {int(b): int(c) for b, c in zip(t.latency_buckets[lo:hi], t.latency_counts[lo:hi], strict=True)}
        out[key] = Partial(counters, latency)
    return out


def breakdown(result: BatchResult) -> dict[BreakdownKey, list[float]]:
    """The breakdown partials of a batch as ``key -> [count, ok, value_sum]``."""
    t = result.breakdown_table
    return {key: [int(t.count[i]), int(t.ok[i]), float(t.value_sum[i])] for i, key in enumerate(t.keys)}
