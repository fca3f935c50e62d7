"""Per-product caps on distinct versions, features, goals and operations, with an overflow bucket.

A write key bounds the product, not what it sends under it: one request with 500
versions made the product page 217 KB and a webhook POST carry 501 alerts (issue 17,
finding 7). So each product may have at most ``PULSE_MAX_<KIND>S_PER_PRODUCT`` distinct
values of each kind seen in the last ``PULSE_CARDINALITY_WINDOW_DAYS``; an event with a
value beyond the cap is stored and counted under :data:`OVERFLOW` instead (PostHog's
overflow idea, applied to the value rather than the partition), and
``pulse_cardinality_overflow_total{kind}`` counts it.

Why a bucket and not a dead letter: the product's totals (sessions, crashes, revenue)
stay exact, only the split by that kind loses the overflowing values. Why the raw row
is rewritten too (not only the minute partials): the unique-user tables are
materialized views over ``events``, and the dashboards list versions from them - a raw
row that kept 500 versions would bring them back. ``__overflow__`` cannot be a real
value: identifiers start with a letter or digit (:data:`pipeline.schema.IDENTIFIER_PATTERN`).

Where the state lives: in each worker's memory (values and the day each was last
seen), seeded at start from the store's last window of values (:meth:`CardinalityCaps.seed`).
Several workers decide apart: a product's events spread over every partition, so with N
workers a product may reach up to N x cap distinct values in the worst case (a fresh
value first seen by each), and a worker that restarts agrees with what the store holds.
A value drops out of the count once it has not been seen for the window, so a product's
steady releases never run into the cap. Decisions are per batch, vectorised; a batch
without a new value costs one group-by per kind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import telemetry

log = logging.getLogger(__name__)

OVERFLOW = "__overflow__"
KINDS = ("version", "feature", "goal", "operation")  # the raw-row column of each kind has its name
_DAY_S = 86_400
_SEP = "\x1f"
SEED_LIMITS = {"max_execution_time": 30, "max_result_rows": 1_000_000, "result_overflow_mode": "break"}
for _kind in KINDS:  # exported at 0 from the start, so a rate() has a series before the first overflow
    telemetry.CARDINALITY_OVERFLOW.labels(_kind)


@dataclass
class CardinalityCaps:
    """The values each product has been admitted per kind, and the caps (``caps[kind]``, 0 = no cap)."""

    caps: Mapping[str, int]
    window_days: int = 30
    seen: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (kind, product) -> value -> day

    @classmethod
    def from_settings(cls, settings: Any) -> CardinalityCaps:
        caps = {kind: int(getattr(settings, f"max_{kind}s_per_product")) for kind in KINDS}
        return cls(caps, settings.cardinality_window_days)

    def apply(self, batch: pa.RecordBatch, now_s: float, stored: pa.Array | None = None) -> pa.RecordBatch:
        """``batch`` (raw rows) with every value beyond its product's cap replaced by :data:`OVERFLOW`.

        Only the rows ``stored`` (indices; default all) admit new values: a duplicate or an event
        dead-lettered for its time takes no place under a cap.
        """
        if not batch.num_rows:
            return batch
        today = int(now_s // _DAY_S)
        product = batch.column("product")
        for kind in KINDS:
            cap = self.caps.get(kind, 0)
            if cap <= 0:
                continue
            column = batch.column(kind)
            keys = pc.binary_join_element_wise(product, column, _SEP)  # identifiers never hold the separator
            # In order of first appearance: a replayed batch admits the same values as its first run did.
            admitting = keys if stored is None else keys.take(stored)
            pairs = [key.split(_SEP) for key in pc.unique(admitting).to_pylist()]
            over = self._decide(kind, cap, pairs, today)
            if not over:
                continue
            mask = pc.is_in(keys, value_set=pa.array([f"{p}{_SEP}{v}" for p, v in over], pa.string()))
            n = pc.sum(mask).as_py() or 0
            telemetry.CARDINALITY_OVERFLOW.labels(kind).inc(n)
            i = batch.schema.get_field_index(kind)
            batch = batch.set_column(i, batch.schema.field(i), pc.if_else(mask, OVERFLOW, column))
        return batch

    def _decide(self, kind: str, cap: int, pairs: list[list[str]], today: int) -> list[tuple[str, str]]:
        """Admit the batch's new values while there is room; the (product, value) pairs that overflow."""
        over = []
        for p, v in pairs:
            if not v or v == OVERFLOW:  # "" is the column of event types that do not carry the kind
                continue
            known = self.seen.setdefault((kind, p), {})
            if v in known:
                known[v] = today
                continue
            if len(known) >= cap:
                self._expire(known, today)
            if len(known) < cap:
                known[v] = today
            else:
                over.append((p, v))
        return over

    def _expire(self, known: dict[str, int], today: int) -> None:
        for value in [v for v, day in known.items() if day < today - self.window_days]:
            del known[value]

    def seed(self, client: Any, database: str, now_s: float) -> int:
        """Admit what the store saw in the last window (newest first, up to each cap); returns the values seeded.

        Versions and features come from the unique-user tables (small, per day), goals from the
        breakdown partials, operations from the raw events of the window.
        """
        today = int(now_s // _DAY_S)
        since = today - self.window_days
        queries = {
            "version": f"SELECT product, version, max(day) FROM {database}.users_1d WHERE day >= {{d:Date}} "
            "GROUP BY product, version",
            "feature": f"SELECT product, feature, max(day) FROM {database}.feature_users_1d WHERE day >= {{d:Date}} "
            "GROUP BY product, feature",
            "goal": f"SELECT product, name, toDate(max(minute)) FROM {database}.breakdown_metrics_1m "
            "WHERE kind = 'goal' AND minute >= toDateTime({d:Date}) GROUP BY product, name",
            "operation": f"SELECT product, operation, toDate(max(ts)) FROM {database}.events "
            "WHERE type = 'request' AND ts >= toDateTime64({d:Date}, 3) GROUP BY product, operation",
        }
        n = 0
        for kind, sql in queries.items():
            cap = self.caps.get(kind, 0)
            if cap <= 0:
                continue
            try:  # bounded: a worker's start never waits long on a big store (an unseeded kind starts empty)
                rows = client.query(sql, parameters={"d": _date(since)}, settings=SEED_LIMITS).result_rows
            except Exception as exc:  # noqa: BLE001 - seeding is best effort; the caps then start from this batch
                log.warning("event=cardinality_seed_failed kind=%s error=%s detail=%r", kind, type(exc).__name__,
                            str(exc)[:200])  # fmt: skip
                continue
            for product, value, day in sorted(rows, key=lambda r: r[2], reverse=True):
                known = self.seen.setdefault((kind, product), {})
                if value and value != OVERFLOW and len(known) < cap and value not in known:
                    known[value] = (day.toordinal() - 719_163) if hasattr(day, "toordinal") else today
                    n += 1
        log.info("event=cardinality_seeded values=%d window_days=%d", n, self.window_days)
        return n


def _date(day: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(day * _DAY_S, UTC).strftime("%Y-%m-%d")
