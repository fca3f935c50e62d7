"""What the release judge reads: each product's hourly traffic per version, and when each version arrived.

The judge decides from traffic, not from announcements: a version a team
never announced, a product's first announced release (its predecessor ran
before anyone announced anything) and a rollback are all visible in
``product_metrics_1m`` as a version whose share of the product's traffic rose.
An announcement (the ``releases`` table) adds the time and the intended
rollout percentage when there is one.

:class:`ProductTraffic` holds one product's hours as cumulative counts per
version (ended sessions, crashed sessions, requests, failed requests and the
latency histogram of :mod:`pipeline.catalog.histogram`), so the total of any
window of hours is one subtraction; :func:`arrivals` finds the versions to
judge. :func:`load_traffic` fills it from the store with one query; the
decision harness (:mod:`alerts.harness`) fills it from simulated scenarios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

HOUR = timedelta(hours=1)
FIELDS = ("sessions", "crashed", "requests", "failed")
RETURN_SHARE = 0.5  # a version that serves at least half of the traffic again...
RETURN_BEFORE = 0.2  # ...after serving less than a fifth of it for RETURN_HOURS, has come back (a rollback)
RETURN_HOURS = 12
MIN_HISTORY_H = 24  # a version is judged only against at least a day of other versions' traffic before it


@dataclass
class Counts:
    """Cumulative hourly counts: index ``i`` is the total over hours ``[0, i)``; ``latency`` is per bucket."""

    sessions: np.ndarray
    crashed: np.ndarray
    requests: np.ndarray
    failed: np.ndarray
    latency: np.ndarray  # shape (hours + 1, buckets)

    @staticmethod
    def of(hourly: Mapping[str, np.ndarray], latency: np.ndarray) -> Counts:
        """From per-hour arrays (not cumulative)."""

        def cum(a: np.ndarray) -> np.ndarray:
            return np.concatenate([np.zeros((1, *a.shape[1:]), dtype=np.int64), np.cumsum(a, axis=0, dtype=np.int64)])

        s, c, r, f = (cum(np.asarray(hourly[name])) for name in FIELDS)
        return Counts(s, c, r, f, cum(latency))

    def window(self, a: int, b: int) -> Window:
        """Totals over hours ``[a, b)`` (clipped to the data)."""
        n = len(self.sessions) - 1
        a, b = max(0, min(a, n)), max(0, min(b, n))
        b = max(a, b)

        def total(c: np.ndarray) -> int:
            return int(round(float(c[b] - c[a])))  # exact for counts; the nearest for the harness' expected values

        return Window(total(self.sessions), total(self.crashed), total(self.requests), total(self.failed),
                      self.latency[b] - self.latency[a])  # fmt: skip


@dataclass(frozen=True)
class Window:
    """One side of a comparison: totals over some hours of some versions."""

    sessions: int
    crashed: int
    requests: int
    failed: int
    latency: np.ndarray  # counts per bucket

    def plus(self, other: Window) -> Window:
        return Window(self.sessions + other.sessions, self.crashed + other.crashed, self.requests + other.requests,
                      self.failed + other.failed, self.latency + other.latency)  # fmt: skip

    def minus(self, other: Window) -> Window:
        return Window(self.sessions - other.sessions, self.crashed - other.crashed, self.requests - other.requests,
                      self.failed - other.failed, self.latency - other.latency)  # fmt: skip

    @property
    def traffic(self) -> int:
        return self.sessions + self.requests


@dataclass(frozen=True)
class Announcement:
    version: str
    released_at: datetime
    rollout_pct: float


@dataclass
class ProductTraffic:
    """One product's hours ``start + i h`` for ``i`` in ``[0, hours)``: counts per version and in total."""

    product: str
    start: datetime
    hours: int
    bucket0: int  # the latency bucket of histogram column 0
    versions: dict[str, Counts]
    total: Counts
    announced: dict[str, Announcement] = field(default_factory=dict)

    def index(self, t: datetime) -> int:
        """The hour that holds ``t`` (may be outside ``[0, hours)``)."""
        return math.floor((t - self.start) / HOUR)

    def at(self, i: int) -> datetime:
        return self.start + i * HOUR


@dataclass(frozen=True)
class Arrival:
    """A version starting to serve a product: to be judged against what served before it."""

    version: str
    hour: int  # index of the first hour judged as the new version's
    how: str  # "first seen in traffic", "announced", "came back (rollback)"
    announcement: Announcement | None
    superseded: int | None = None  # the hour the next arrival (of any version) starts, if one has


def arrivals(traffic: ProductTraffic) -> list[Arrival]:
    """Every arrival of a version that has at least a day of other versions' traffic before it, oldest first."""
    out: list[Arrival] = []
    total = traffic.total.sessions + traffic.total.requests
    for version, counts in traffic.versions.items():
        mine = counts.sessions + counts.requests
        hourly = np.diff(mine)
        seen = np.flatnonzero(hourly > 0)
        if not len(seen):
            continue
        first = int(seen[0])
        note = traffic.announced.get(version)
        starts: list[tuple[int, str]] = []
        announced_hour = traffic.index(note.released_at) if note else None
        if announced_hour is not None and announced_hour <= first:
            starts.append((max(announced_hour, 0), "announced"))
        else:
            starts.append((first, "first seen in traffic"))
        # Later returns (a rollback): a version that had served most of the traffic, then less than a fifth of it
        # for RETURN_HOURS, serves at least half of it again.
        dominant_until = -1  # the last hour starting a 6-hour stretch in which this version served most traffic
        for h in range(first, traffic.hours - 1):
            if _share(mine, total, h, h + 6) < RETURN_SHARE:
                continue
            gone = dominant_until >= 0 and h - dominant_until > RETURN_HOURS
            if gone and _share(mine, total, h - RETURN_HOURS, h) < RETURN_BEFORE:
                near = announced_hour is not None and abs(announced_hour - h) <= 6
                starts.append((h, "announced" if near else "came back (rollback)"))
            dominant_until = h
        # An announcement well after the version first served (a re-release) while it served less than half.
        if announced_hour is not None and _re_released(mine, total, first, announced_hour, starts):
            starts.append((announced_hour, "announced"))
        kept: list[tuple[int, str]] = []
        for h, how in sorted(starts):
            if kept and h - kept[-1][0] < 24:
                continue
            others = int(total[h] - mine[h]) - int(total[max(0, h - MIN_HISTORY_H)] - mine[max(0, h - MIN_HISTORY_H)])
            if h >= MIN_HISTORY_H and others > 0:
                kept.append((h, how))
        out.extend(Arrival(version, h, how, note) for h, how in kept)
    out.sort(key=lambda a: (a.hour, a.version))
    return [replace(a, superseded=next((b.hour for b in out if b.hour > a.hour), None)) for a in out]


def _re_released(mine: np.ndarray, total: np.ndarray, first: int, hour: int, starts: list[tuple[int, str]]) -> bool:
    late = hour > first + RETURN_HOURS and not any(abs(h - hour) <= 6 for h, _ in starts)
    return late and _share(mine, total, hour - RETURN_HOURS, hour) < RETURN_SHARE


def _share(mine: np.ndarray, total: np.ndarray, a: int, b: int) -> float:
    n = len(total) - 1
    a, b = max(0, min(a, n)), max(0, min(b, n))
    t = int(total[b] - total[a])
    return (int(mine[b] - mine[a]) / t) if t > 0 else 0.0


# ---------------------------------------------------------------------------------------------- from the store


def load_traffic(
    client: Client, database: str, since: datetime, until: datetime, announced: Iterable[tuple[str, Announcement]] = ()
) -> dict[str, ProductTraffic]:
    """Every product's hourly traffic per version over ``[since, until)``, from ``product_metrics_1m``, one query."""
    start = since.replace(minute=0, second=0, microsecond=0)
    hours = max(1, math.ceil((until - start) / HOUR))
    rows = client.query(
        "SELECT product, version, toStartOfHour(minute) AS hour, sum(sessions_ended), sum(sessions_crashed), "
        "sum(requests), sum(request_errors), sumMap(latency_bucket, latency_count) "
        f"FROM {database}.product_metrics_1m FINAL "
        "WHERE minute >= {since:DateTime} AND minute < {until:DateTime} GROUP BY product, version, hour",
        parameters={"since": start, "until": until},
    ).result_rows
    buckets = [int(b) for r in rows for b in r[7][0]]
    lo, hi = (min(buckets), max(buckets)) if buckets else (0, 0)
    per: dict[str, dict[str, list[tuple[int, tuple[int, int, int, int], tuple[list[int], list[int]]]]]] = {}
    for product, version, hour, sessions, crashed, requests, failed, hist in rows:
        i = math.floor((_aware(hour) - start) / HOUR)
        if 0 <= i < hours:
            per.setdefault(product, {}).setdefault(version, []).append(
                (i, (int(sessions), int(crashed), int(requests), int(failed)), hist)
            )
    notes: dict[str, dict[str, Announcement]] = {}
    for product, note in announced:
        notes.setdefault(product, {})[note.version] = note
    out = {}
    for product, by_version in per.items():
        versions = {}
        for version, items in by_version.items():
            counts = np.zeros((hours, 4), dtype=np.int64)
            latency = np.zeros((hours, hi - lo + 1), dtype=np.int64)
            for i, c, (keys, values) in items:
                counts[i] += c
                for k, v in zip(keys, values, strict=True):
                    latency[i, int(k) - lo] += int(v)
            versions[version] = ({f: counts[:, j] for j, f in enumerate(FIELDS)}, latency)
        out[product] = traffic_of(product, start, hours, lo, versions, notes.get(product, {}))
    return out


def traffic_of(
    product: str, start: datetime, hours: int, bucket0: int,
    versions: Mapping[str, tuple[Mapping[str, np.ndarray], np.ndarray]], announced: Mapping[str, Announcement],
) -> ProductTraffic:  # fmt: skip
    """A :class:`ProductTraffic` from per-hour (not cumulative) arrays per version."""
    counts = {v: Counts.of(h, lat) for v, (h, lat) in versions.items()}
    summed = {f: sum((np.asarray(h[f]) for h, _ in versions.values()), np.zeros(hours, dtype=np.int64)) for f in FIELDS}
    width = next(iter(versions.values()))[1].shape[1] if versions else 1
    latency = sum((lat for _, lat in versions.values()), np.zeros((hours, width), dtype=np.int64))
    return ProductTraffic(product, start, hours, bucket0, counts, Counts.of(summed, latency), dict(announced))


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
