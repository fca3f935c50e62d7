"""Stage two of a batch: which decoded events are stored and counted, and what the sink must make durable.

:func:`aggregate_decoded` takes a :class:`~consumers.decode.DecodedBatch`
and returns a :class:`BatchResult`: the raw rows (:mod:`consumers.rows`), the
minute partials (:mod:`consumers.partials`) and the dead letters. Pure logic,
no I/O; every decision is taken for the whole batch at once (numpy masks, one
dedup call per partition) and equals the one an event-by-event loop takes.

Exactness rules
---------------
* An ``event_id`` is counted at its first position in its partition only
  (:class:`~consumers.dedup.SeenIds`); a producer retry that wrote it twice
  counts once.
* Event time decides the minute. An event older than the partition's watermark
  (max event time seen - allowed lateness) is *late*: it still counts in its
  own minute, by a row with its batch's key, and is tallied in ``late_events``.
  An event further in the future than the allowed skew is dead-lettered, and so
  is one before 1970 or older than the maximum age (``past_ts``).
* Positions the store refused (``rejected``) are dead-lettered with the store's
  reason and left out of every row, so the partials agree with the raw rows.
* With ``caps`` (:mod:`consumers.cardinality`), a version, feature, goal or operation
  past its product's cap is stored and counted as ``__overflow__``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumers.cardinality import CardinalityCaps
from consumers.decode import DecodedBatch
from consumers.dedup import SeenIds, Watermarks
from consumers.partials import BreakdownTable, PartialTable, breakdown_table, partial_keys, partial_table
from consumers.records import DeadLetter, Position, Rejection
from consumers.rows import RawRows
from pipeline.events import MAX_PACK_EVENTS, DecodeError, utc_datetime


@dataclass
class BatchResult:
    """Everything one batch makes durable, and what it counted."""

    raw_rows: RawRows = field(default_factory=RawRows)
    partial_table: PartialTable = field(default_factory=PartialTable)
    breakdown_table: BreakdownTable = field(default_factory=BreakdownTable)
    dead: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0
    products: dict[str, int] = field(default_factory=dict)  # stored events per product


def aggregate_decoded(
    batch: DecodedBatch,
    seen: SeenIds,
    watermarks: Watermarks,
    now_s: float,
    max_future_skew_s: float,
    max_age_s: float = math.inf,
    rejected: Mapping[Position, str] | None = None,
    caps: CardinalityCaps | None = None,
) -> BatchResult:
    """Stage two: event time bounds, dedup, watermarks and the partials of a decoded batch, in event order.

    Every decision is taken for the whole batch at once (numpy masks, one
    :meth:`SeenIds.first_many` per partition, running maxima per partition for
    the watermarks) and equals the one an event-by-event loop takes.
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
                dead.append((j, batch.dead_letter(j, r)))

    def refuse(rows: np.ndarray, error: Callable[[int], Rejection]) -> None:
        for v in rows.tolist():
            j = batch.valid[v]
            dead.append((j, batch.dead_letter(j, error(v))))

    def when(v: int) -> str:
        return utc_datetime(batch.micros[v]).isoformat()

    keep = np.ones(n, np.bool_)
    if rejected:
        refused = np.array([batch.position(v) in rejected for v in range(n)], np.bool_)
        refuse(np.flatnonzero(refused), lambda v: Rejection("rejected_by_store", rejected[batch.position(v)]))
        keep &= ~refused
    future = keep & (ts > now_s + max_future_skew_s)
    ahead = f"{max_future_skew_s:.0f}s ahead of now"
    refuse(np.flatnonzero(future), lambda v: Rejection("future_ts", f"ts {when(v)} is more than {ahead}"))
    keep &= ~future
    past_limit = max(0.0, now_s - max_age_s)  # nothing before 1970: the store's DateTime columns cannot hold it
    past = keep & (ts < past_limit)
    oldest = f"before {_iso(past_limit)}, the oldest event time kept"
    refuse(np.flatnonzero(past), lambda v: Rejection("past_ts", f"ts {when(v)} is {oldest}"))
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
    if caps is not None and len(stored):  # values past a product's cap become __overflow__, in raw rows and partials
        batch.set_arrow(caps.apply(batch.arrow(), now_s, pa.array(stored, pa.int64())))
    rows = out.raw_rows = RawRows(batch, stored.tolist())
    if len(stored):
        out.late = int(late[stored].sum())
        cols = rows.arrow_batch()
        product = pc.dictionary_encode(cols.column("product"))
        out.products = dict(zip(product.dictionary.to_pylist(), _counts(product.indices), strict=True))
        keys, kid = partial_keys(rows, product, batch_start)
        out.partial_table = partial_table(cols, keys, kid, late[stored])
        out.breakdown_table = breakdown_table(cols, keys, kid)
    return out


def _counts(indices: pa.Array) -> list[int]:
    return np.bincount(indices.to_numpy(zero_copy_only=False)).tolist()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
