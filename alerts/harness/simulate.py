"""A scenario's product as hourly traffic per version: the counts the worker would have stored.

Per hour: sessions ~ Poisson(users x sessions per user, shaped by the hour of
the day - peaking at the product's ``peak_hour``, or at an hour drawn per seed
(:func:`peak_hour`) - the weekend dip and holidays), split over versions by the rollout
(each release takes its target share of users, who move with time constant
``adopt_hours``); crashes ~ Binomial(sessions, crash rate x effect); requests
~ Poisson(sessions x requests per session), failures ~ Binomial; latencies
lognormal around the median x effect x creep, in the catalog's histogram
buckets. The result is a :class:`~alerts.traffic.ProductTraffic`, the same
object the judge reads from the store.

Late events (a product's ``late_share``): :func:`arriving` moves that share of
each hour's events to arrive ``late_hours`` later, and its
:meth:`Arriving.as_of` is the store as a look at hour ``t`` sees it.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from alerts.harness.scenario import Product, Scenario
from alerts.traffic import Announcement, Counts, ProductTraffic, Window, traffic_of
from pipeline.catalog.histogram import GAMMA

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: weekdays and weekends fall where the scenario says
LO_MS, HI_MS = 1.0, 120_000.0
_LOG_GAMMA = math.log(GAMMA)
BUCKET0 = math.ceil(math.log(LO_MS) / _LOG_GAMMA)
BUCKETS = math.ceil(math.log(HI_MS) / _LOG_GAMMA) - BUCKET0 + 1


def diurnal(hour_of_day: np.ndarray, peak: float = 15.0) -> np.ndarray:
    """Traffic by the hour of the day (UTC): a peak at ``peak``, a trough twelve hours later (mean 1)."""
    return 1.0 + 0.6 * np.sin((hour_of_day - peak + 6.0) / 24.0 * 2 * math.pi)


def peak_hour(product: Product, seed: int) -> float:
    """The hour the product's traffic peaks at: its own ``peak_hour``, or one drawn from the seed and its name.

    Drawn, every hour of the day is where some seed's releases begin: a release at its users' afternoon peak
    and one that goes out into their night are judged on very different first hours.
    """
    if product.peak_hour is not None:
        return product.peak_hour
    return float(stream(product, seed, 0x9EA4).integers(24))


def shares(product: Product, hours: int) -> dict[str, np.ndarray]:
    """Each version's share of the traffic per hour (summing to 1 per hour)."""
    t = np.arange(hours) + 0.5
    entities: list[tuple[str, np.ndarray]] = []
    for r in product.releases:
        since = t - r.day * 24
        target = np.array([r.target(h) if h >= 0 else 0.0 for h in since])
        moved = np.where(since >= 0, target * (1 - np.exp(-np.maximum(since, 0) / product.adopt_hours)), 0.0)
        if r.day <= 0:
            moved = np.ones(hours)
        # each release takes its share of everything on earlier releases
        entities = [(v, s * (1 - moved)) for v, s in entities] + [(r.version, moved)]
    out: dict[str, np.ndarray] = {}
    for v, s in entities:
        out[v] = out.get(v, np.zeros(hours)) + s
    return out


def effects(product: Product, hours: int) -> dict[str, tuple[float, float, float]]:
    """Crash, error and latency multipliers per version (a version's latest release says)."""
    return {r.version: (r.crash, r.errors, r.latency) for r in product.releases}


def simulate(scenario: Scenario, product: Product, seed: int, peak: float | None = None) -> ProductTraffic:
    """The product's traffic once every event arrived (what the store holds in the end); ``peak``: see
    :func:`peak_hour` (default: the seed's)."""
    versions, announced = _hourly(scenario, product, seed, peak)
    return traffic_of(product.name, START, scenario.days * 24, BUCKET0, versions, announced)


Hourly = dict[str, tuple[dict[str, np.ndarray], np.ndarray]]  # per version: counts per field, latency histograms


def stream(product: Product, seed: int, *salt: int) -> np.random.Generator:
    """The product's own random numbers under ``seed``: products of one scenario, even the grid's replicas of
    one volume, draw independently (with the seed alone, those replicas were copies of each other)."""
    return np.random.default_rng((seed, zlib.crc32(product.name.encode()), *salt))


def _hourly(scenario: Scenario, product: Product, seed: int, peak: float | None = None
            ) -> tuple[Hourly, dict[str, Announcement]]:  # fmt: skip
    rng = stream(product, seed)
    hours = scenario.days * 24
    h = np.arange(hours)
    day = h // 24
    weekend = np.isin((day + START.weekday()) % 7, (5, 6))
    season = diurnal(h % 24, peak_hour(product, seed) if peak is None else peak)
    season = season * np.where(weekend, 1 - scenario.weekly, 1.0)
    season = season * np.where(np.isin(day, scenario.holidays), 0.5, 1.0)
    sessions = rng.poisson(product.users_per_day * product.sessions_per_user * season / 24)
    by_version = shares(product, hours)
    names = list(by_version)
    p = np.stack([by_version[v] for v in names], axis=1)
    p = p / p.sum(axis=1, keepdims=True)
    split = np.stack([rng.multinomial(n, p[i]) for i, n in enumerate(sessions)]) if hours else np.zeros((0, 0))
    creep = product.latency_creep ** (h / max(hours - 1, 1))
    mults = effects(product, hours)
    during = {"crash": np.ones(hours), "errors": np.ones(hours)}  # incidents: every version alike
    for inc in product.incidents:
        hit = (h >= inc.day * 24) & (h < inc.day * 24 + inc.hours)
        during["crash"][hit] *= inc.crash
        during["errors"][hit] *= inc.errors
    versions: Hourly = {}
    for j, v in enumerate(names):
        crash, errors, latency = mults[v]
        s = np.asarray(split[:, j], dtype=np.int64)
        requests = rng.poisson(s * product.requests_per_session)
        hist = _latencies(rng, requests, product.latency_ms * latency * creep, product.latency_sigma)
        versions[v] = ({
            "sessions": s,
            "crashed": rng.binomial(s, np.minimum(1.0, product.crash_rate * crash * during["crash"])),
            "requests": requests,
            "failed": rng.binomial(requests, np.minimum(1.0, product.error_rate * errors * during["errors"])),
        }, hist)  # fmt: skip
    announced = {
        r.version: Announcement(r.version, START + timedelta(days=r.day), r.rollout[-1][1] if len(r.rollout) == 1
                                else r.rollout[0][1])
        for r in product.releases if r.announced and r.day > 0
    }  # fmt: skip
    return versions, announced


@dataclass
class Seen(Counts):
    """Counts as the store holds them at look ``t``: those on time, plus the late ones that arrived by then."""

    late: tuple[tuple[int, Counts], ...] = ()  # (delay in hours, the counts that arrive that late)
    t: int = 0

    def window(self, a: int, b: int) -> Window:
        w = super().window(a, b)
        for delay, counts in self.late:
            w = w.plus(counts.window(a, min(b, self.t - delay)))  # hour h arrived by t if h + delay < t
        return w


@dataclass
class Arriving:
    """A simulated product as each look sees it: :attr:`final` once all arrived, :meth:`as_of` at hour ``t``."""

    final: ProductTraffic
    on_time: ProductTraffic | None = None  # None: no late events
    late: tuple[tuple[int, ProductTraffic], ...] = ()

    def as_of(self, t: int) -> ProductTraffic:
        if self.on_time is None:
            return self.final
        f, on = self.final, self.on_time

        def seen(name: str | None) -> Seen:
            base = on.total if name is None else on.versions[name]
            late = tuple((d, lt.total if name is None else lt.versions[name]) for d, lt in self.late)
            return Seen(base.sessions, base.crashed, base.requests, base.failed, base.latency, late, t)

        return ProductTraffic(f.product, f.start, f.hours, f.bucket0, {v: seen(v) for v in on.versions}, seen(None),
                              f.announced)  # fmt: skip


def arriving(scenario: Scenario, product: Product, seed: int) -> Arriving:
    """The product's traffic with its late events (``late_share`` of each hour, ``late_hours`` late).

    The split draws from a generator of its own, so a product without late
    events simulates exactly as :func:`simulate` does. Late requests carry
    their latencies: the histograms are split, and the late request counts are
    their sums.
    """
    versions, announced = _hourly(scenario, product, seed)
    hours = scenario.days * 24
    final = traffic_of(product.name, START, hours, BUCKET0, versions, announced)
    if product.late_share <= 0:
        return Arriving(final)
    rng = stream(product, seed, 0x1A7E)
    delays = list(range(product.late_hours[0], product.late_hours[1] + 1))
    on_time: Hourly = {}
    late: list[Hourly] = [{} for _ in delays]
    for v, (fields, hist) in versions.items():
        left = {f: np.asarray(a, dtype=np.int64).copy() for f, a in fields.items()}
        left_hist = hist.copy()
        parts: list[tuple[dict[str, np.ndarray], np.ndarray]] = [({}, np.zeros_like(hist)) for _ in delays]
        for i in range(len(delays)):
            p = product.late_share / len(delays) / (1 - product.late_share * i / len(delays))  # sequential split
            for f in product.late_fields:
                if f == "requests":
                    continue
                parts[i][0][f] = rng.binomial(left[f], p)
                left[f] -= parts[i][0][f]
            if "requests" in product.late_fields:
                h = rng.binomial(left_hist, p)
                left_hist -= h
                parts[i] = (parts[i][0] | {"requests": h.sum(axis=1)}, h)
                left["requests"] -= parts[i][0]["requests"]
        on_time[v] = (left, left_hist)
        for i, (part, h) in enumerate(parts):
            zeros = np.zeros(hours, dtype=np.int64)
            late[i][v] = ({f: part.get(f, zeros) for f in ("sessions", "crashed", "requests", "failed")}, h)
    return Arriving(
        final,
        traffic_of(product.name, START, hours, BUCKET0, on_time, announced),
        tuple((d, traffic_of(product.name, START, hours, BUCKET0, late[i], announced)) for i, d in enumerate(delays)),
    )


def _latencies(rng: np.random.Generator, requests: np.ndarray, median: np.ndarray, sigma: float) -> np.ndarray:
    """Per hour, the histogram of ``requests[i]`` lognormal latencies around ``median[i]``."""
    total = int(requests.sum())
    hist = np.zeros((len(requests), BUCKETS), dtype=np.int64)
    if total == 0:
        return hist
    hour = np.repeat(np.arange(len(requests)), requests)
    values = np.exp(np.log(median[hour]) + sigma * rng.standard_normal(total))
    bucket = np.clip(np.ceil(np.log(np.clip(values, LO_MS, HI_MS)) / _LOG_GAMMA) - BUCKET0, 0, BUCKETS - 1)
    np.add.at(hist, (hour, bucket.astype(np.int64)), 1)
    return hist
