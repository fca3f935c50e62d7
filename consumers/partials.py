"""Minute partials of a batch: its stored events summed per key, column-wise, for two ClickHouse tables.

* ``product_metrics_1m``: one row per :class:`PartialKey` (product, version,
  event-time minute, source partition, first offset of this batch in that
  partition) with every counter of :data:`COUNTERS` and the latency histogram.
* ``breakdown_metrics_1m``: one row per :class:`BreakdownKey` - the same key
  plus a feature or a conversion goal - with its count, successes and summed
  duration or value.

Replaying a batch from the same offset rewrites the same keys, so ClickHouse's
ReplacingMergeTree replaces instead of doubling. Every counter is summed with
``np.bincount`` over the whole batch in event order, so every float sum is the
one an event-by-event fold gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumers.rows import RawRows, arrow_stream
from pipeline.catalog.histogram import ZERO_BUCKET, bucket_of

# Counter columns of product_metrics_1m, in table order.
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
FLOAT_COUNTERS = frozenset({"session_duration_ms_sum", "latency_ms_sum", "revenue"})
KEY_COLUMNS: tuple[str, ...] = ("product", "version", "minute", "src_partition", "batch_start")
PARTIAL_COLUMNS: tuple[str, ...] = KEY_COLUMNS + COUNTERS + ("latency_bucket", "latency_count")
BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "product", "version", "kind", "name", "minute", "src_partition", "batch_start", "count", "ok", "value_sum",
)  # fmt: skip
_STR, _F64 = pa.string(), pa.float64()


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


def partial_keys(
    rows: RawRows, product: pa.DictionaryArray, batch_start: dict[int, int]
) -> tuple[list[PartialKey], np.ndarray]:
    """Each stored row's partial key: (product, version, minute, partition, batch start), numbered first-seen."""
    cols = rows.arrow_batch()
    source = rows.source
    ts = np.array(source.ts)[np.array(rows.index, np.int64)] if source is not None and rows.index else np.zeros(0)
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


_BUCKET_SPAN = 4096  # bucket_of spans ZERO_BUCKET..~915 for latencies up to one day


def partial_table(cols: pa.RecordBatch, keys: list[PartialKey], kid: np.ndarray, late: np.ndarray) -> PartialTable:
    """Sum every counter per key (``kid``: each row's key) with ``np.bincount``: a sequential sum in event order."""
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


def breakdown_table(cols: pa.RecordBatch, keys: list[PartialKey], kid: np.ndarray) -> BreakdownTable:
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
