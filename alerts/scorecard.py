"""Redesign scorecards: a 0-100 score per product and dimension, with intervals, floors and a flag that holds.

What a product manager reads (the formula, in words):

* **Signals.** Each of the four dimensions reads a few catalog metrics
  (``alerts/scorecard.yaml`` lists them, :mod:`alerts.scorecard_config` reads
  it): business impact - daily active users and conversion rate; customer
  experience - crash-free sessions, task success, NPS and CSAT; post-launch
  support - tickets per 1k sessions and time to resolve; performance - p95
  latency against its SLO and the error rate.
* **Signal value and interval** (:mod:`alerts.estimates`). Over a window of
  days a signal is computed from its summed counts (crashes and sessions, NPS
  answers by class, tickets, ...), with a ``level`` (95%) interval: Wilson for
  rates, normal for NPS and CSAT, Poisson for tickets and daily users, an
  order-statistic interval for p95 latency. Thin data gives a wide interval.
* **Signal score** (:mod:`alerts.scoring`). 100 means "as good as this
  product's own reference", 0 means "as bad as the configured ``bad`` anchor",
  linear in between and clipped: DAU at 60% of the reference scores 0, crash
  rate (1 - crash-free) at 3x the reference scores 0, NPS 40 points under the
  reference scores 0, p95 latency at 2x its SLO scores 0 (within the SLO: 100).
  A product is compared with itself, so a naturally small or slow product is
  not punished for it. The score's interval maps the interval of the
  comparison (value / reference, or points dropped; MOVER, so the reference's
  own noise counts too) through the same monotone formula.
* **Reference: the earliest two complete weeks within the last six weeks**
  (the earliest ``baseline_days`` days with data in the ``reference_lookback_days``
  ending on the day scored, before that day's window). Not the week before the
  period: a steady decline measured against its own recent past never looks
  bad. Not the best weeks either: the maximum of several noisy windows is
  optimistic, and healthy products would score under 100 by construction. The
  earliest weeks precede any decline that began within the last four weeks,
  are whole weeks so weekly seasonality cancels, and are two of them so the
  reference's own noise is small next to the window's. A product (or store)
  whose first day is within the lookback is compared with its first
  ``young_reference_days`` (7) days, fixed: a reference that grew with it
  would take in a decline that began at its start, and so would its first
  two weeks (half of a decline over its first four weeks); a whole week so
  weekly seasonality cancels. Every day is scored against its own reference, so a day's
  verdict depends on the data up to that day, not on when it is read: that is
  what keeps consecutive evaluations consistent. A decline older than the
  lookback is partly absorbed; the trend test and the release trend still see
  it fall.
* **Dimension score** = weighted mean of its signals' scores; its interval
  is MOVER's for a sum of independent estimates (each end's distance from the
  point adds in squares over the signals). **Composite** =
  weighted mean of the dimensions. A signal without data (no NPS answers, a
  zero reference) has no score and is left out, never a crash. There is no
  minimum volume: a product with little data gets wide intervals, so it is
  not flagged on noise, yet a strong enough change still flags it.
* **Daily evaluation.** Each complete UTC day is scored over the trailing
  ``window_days`` (a week: every weekday once, so weekly seasonality
  cancels). The current, incomplete day is not read, so a scorecard changes
  once a day.
* **Below floor.** On a day, a dimension is *below* its floor when the upper
  end of its score's interval is under the floor (confidently below), or when
  its point score is under the floor, its interval excludes recovery (upper
  end at most floor + ``exit_margin``) and the **trend test** finds it falling:
  the slope of its daily scores over the trailing period, fitted by
  generalized least squares with the covariance that the windows' overlap
  gives (so the test holds its level on week-long windows), one-sided p <
  ``trend.alpha`` and a fitted fall of at least ``trend.min_drop`` points -
  evidence before the interval has crossed. A window that shares days with
  its reference (a young store's first two weeks) is no point of the trend:
  it is partly compared with itself, so it sits near 100 whatever its
  reference drew, and after an unlucky first week the honest days that
  follow read as a fall (17 of 800 healthy 21-day stores' dimensions
  "fell" at p < 1%; 1 without those points). Its score is still shown, and
  can still be confidently below (sharing days pulls it towards 100).
* **The flag, with hysteresis** (deterministic from the data, no stored state).
  The days of the period, and as many before them as warm-up, are walked in
  order. A product *becomes* a candidate on a day when at least
  ``min_dimensions_below`` (2) dimensions are below their floors on that day
  (and on at least ``min_days_below`` days of the trailing period: 1, since a
  day's window shares six of its seven days with the day before's, so more
  days would add delay rather than evidence). It *stays*
  one while at least that many of its dimensions have not recovered - a
  dimension recovers when it is no longer below and its point score is above
  floor + ``exit_margin``. A product is also a candidate when its composite
  fell release after release (each of the last ``release_trend.releases``
  release eras at least ``min_drop`` points under the one before, ending under
  the composite floor). A product bad on one dimension only is not a
  candidate: that is an alert, not a redesign. The flag is a ticket for the
  PM, never a page.
* **Evidence.** JSON (every dimension below its floor with its signals' values,
  references, intervals and scores; when and why the flag was raised or
  cleared) and the same in sentences (:func:`alerts.evidence.scorecard_sentences`).

Cost: one catalog query per evaluation (three SQL statements: minute
aggregates, daily user sketches and tickets, grouped by product and day) plus
one read of ``releases``; everything else is arithmetic in Python. Only data
with event time before ``now`` (in fact before ``now``'s UTC midnight) is read.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import TYPE_CHECKING, Any

from alerts.estimates import ESTIMATORS
from alerts.evidence import dimension_sentence, missing_signals, scorecard_sentences
from alerts.intervals import Estimate, z_of
from alerts.regression import released_versions
from alerts.sample import Sample
from alerts.scorecard_config import DIMENSIONS, ScorecardConfig, load_config
from alerts.scoring import Trend, finite, rounded, score_interval, trend, weighted_mean
from pipeline import catalog

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

COMPOSITE = "composite"
_COLUMNS = [
    "at", "product", "dimension", "score", "floor", "below_floor", "days_below", "trend", "redesign_candidate",
    "evidence",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class SignalScore:
    """One signal in a window: its value, the reference it is compared with, and its score, each with an interval."""

    signal: str
    value: float | None
    baseline: float | None
    score: float | None
    kind: str = ""
    value_interval: Estimate | None = None
    baseline_interval: Estimate | None = None
    score_interval: Estimate | None = None

    def to_json(self) -> dict[str, Any]:
        def ends(e: Estimate | None, digits: int = 4) -> list[float | None]:
            return [rounded(e.low, digits), rounded(e.high, digits)] if e is not None else [None, None]

        return {
            "signal": self.signal,
            "kind": self.kind,
            "value": rounded(self.value),
            "value_ci": ends(self.value_interval),
            "baseline": rounded(self.baseline),
            "baseline_ci": ends(self.baseline_interval),
            "score": rounded(self.score),
            "score_ci": ends(self.score_interval, 1),
        }


@dataclass(frozen=True)
class DimensionScore:
    """One dimension (or the composite) of a product's scorecard on the last complete day."""

    name: str
    score: float | None
    floor: float
    below_floor: bool  # below on the last day: confidently, or under the floor and falling (see the module doc)
    days_below: int  # days of the period it was below
    trend: float | None  # points per day over the period
    signals: tuple[SignalScore, ...] = ()
    portfolio_median: float | None = None
    score_low: float | None = None
    score_high: float | None = None
    trend_p: float | None = None  # one-sided p-value of the decline
    declining: bool = False  # the trend test says it falls

    def to_json(self) -> dict[str, Any]:
        return {
            "score": rounded(self.score, 1),
            "score_ci": [rounded(self.score_low, 1), rounded(self.score_high, 1)],
            "floor": self.floor,
            "below_floor": self.below_floor,
            "days_below": self.days_below,
            "trend_per_day": rounded(self.trend, 2),
            "trend_p": rounded(self.trend_p, 4),
            "declining": self.declining,
            "portfolio_median": rounded(self.portfolio_median, 1),
            "signals": [s.to_json() for s in self.signals],
        }


@dataclass(frozen=True)
class ReleaseEra:
    """A release's era: the complete days it was the product's newest release, and the composite over them."""

    version: str
    released_at: datetime
    days: int
    composite: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "released_at": self.released_at.isoformat(),
            "days": self.days,
            "composite": rounded(self.composite, 1),
        }


@dataclass(frozen=True)
class Scorecard:
    product: str
    at: datetime  # evaluation time (``now``)
    day: date | None  # the last complete day scored
    dimensions: dict[str, DimensionScore]
    composite: DimensionScore
    redesign_candidate: bool
    evidence: tuple[dict[str, Any], ...] = ()
    releases: tuple[ReleaseEra, ...] = field(default=())
    reference: tuple[date, date] | None = None  # first and last day of the reference
    candidate_since: date | None = None
    policy: Mapping[str, Any] = field(default_factory=dict)  # the settings the sentences quote

    @property
    def dimensions_below(self) -> list[str]:
        return [n for n, d in self.dimensions.items() if d.below_floor]

    @property
    def sentences(self) -> list[str]:
        return scorecard_sentences(self._facts())

    def _facts(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "at": self.at.isoformat(),
            "day": self.day.isoformat() if self.day else None,
            "redesign_candidate": self.redesign_candidate,
            "candidate_since": self.candidate_since.isoformat() if self.candidate_since else None,
            "reference": [d.isoformat() for d in self.reference] if self.reference else None,
            "policy": dict(self.policy),
            "composite": self.composite.to_json(),
            "dimensions": {n: d.to_json() for n, d in self.dimensions.items()},
            "releases": [r.to_json() for r in self.releases],
            "evidence": [dict(e) for e in self.evidence],
        }

    def to_json(self) -> dict[str, Any]:
        """What ``pulse scorecard --format json`` prints for one product: the facts, and them in sentences."""
        doc = self._facts()
        doc["missing_signals"] = missing_signals(doc)  # what the product's instrumentation does not send
        doc["sentences"] = scorecard_sentences(doc)
        for item in doc["evidence"]:
            if item.get("kind") == "redesign_candidate":
                item["sentences"] = doc["sentences"]
        return doc


# ---------------------------------------------------------------------------------------------- the daily series


class _Window:
    """Some days of one product (see :class:`alerts.estimates.Window`)."""

    def __init__(self, rows: list[dict[str, float]]) -> None:
        self._rows = rows

    def total(self, metric: str) -> float:
        values = (r.get(metric) for r in self._rows)
        return sum(v for v in values if v is not None and math.isfinite(v))

    def mean(self, metric: str, weight: str | None = None) -> float | None:
        return weighted_mean((r.get(metric, math.nan), r.get(weight, 0.0) if weight else 1.0) for r in self._rows)

    def days(self) -> int:
        return sum(1 for r in self._rows if finite(r.get("dau")))


@dataclass
class _Series:
    """One product's complete days: per day the catalog values (counts and daily values) the estimators read."""

    days: list[date]
    values: dict[date, dict[str, float]]

    def over(self, days: Iterable[date]) -> _Window:
        return _Window([self.values[d] for d in days if d in self.values])


def _metrics(cfg: ScorecardConfig) -> list[str]:
    names = {n for specs in cfg.signals.values() for s in specs for n in ESTIMATORS[s.metric].needs}
    return sorted(names | {"sessions", "requests", "dau"})


def _load(
    client: Client, database: str, cfg: ScorecardConfig, first: date, last: date
) -> tuple[list[date], dict[str, _Series]]:
    """Daily catalog values per product for the complete days ``first``..``last``, one catalog query."""
    since = datetime.combine(first, time(), UTC)
    until = datetime.combine(last + timedelta(days=1), time(), UTC)
    names = _metrics(cfg)
    columns, rows = catalog.query(client, database, names, since, until=until, by=("product",), step_s=86_400)
    all_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    per_product: dict[str, dict[date, dict[str, float]]] = {}
    for row in rows:
        t, product, *vals = row
        day = t.date() if isinstance(t, datetime) else t
        per_product.setdefault(product, {})[day] = {
            n: (float(v) if v is not None else math.nan) for n, v in zip(names, vals, strict=True)
        }
    series: dict[str, _Series] = {}
    for product, by_day in per_product.items():
        active = sorted(d for d, v in by_day.items() if v.get("sessions", 0) > 0 or finite(v.get("dau")))
        if not active:
            continue
        # A product whose data starts inside the lookback most likely started mid-day: drop that partial day.
        if active[0] > first:
            by_day.pop(active[0], None)
        series[product] = _Series(all_days, by_day)
    return all_days, series


# ---------------------------------------------------------------------------------------------- scoring a product


@dataclass(frozen=True)
class _WindowScore:
    dimensions: dict[str, Estimate | None]
    composite: Estimate | None
    signals: dict[str, tuple[SignalScore, ...]]
    # The window shares days with its reference (a young store's first two weeks): its scores are pulled towards
    # 100 by the shared days, so they are shown and can be confidently below, but are no point of a trend.
    in_reference: bool = False


def _weighted(pairs: list[tuple[Estimate, float]]) -> Estimate | None:
    """The weighted mean of independent scores, with MOVER's interval for a sum: the ends' distances add in squares.

    Weighted like the point score; for one signal it is that signal's own
    interval. (Averaging the ends instead would add the distances linearly, as
    if every signal were at its worst at once: far wider than the level.)
    """
    pairs = [(e, w) for e, w in pairs if finite(e.value) and w > 0]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        return None
    point = sum(e.value * w for e, w in pairs) / total
    down = math.sqrt(sum((w * (e.value - e.low)) ** 2 for e, w in pairs)) / total
    up = math.sqrt(sum((w * (e.high - e.value)) ** 2 for e, w in pairs)) / total
    return Estimate(point, max(0.0, point - down), min(100.0, point + up))


def _references(series: _Series, reference: list[date], cfg: ScorecardConfig) -> dict[str, Estimate | None]:
    z = z_of(cfg.level)
    window = series.over(reference)
    return {s.metric: ESTIMATORS[s.metric].estimate(window, z) for specs in cfg.signals.values() for s in specs}


def _score_window(
    series: _Series, days: list[date], refs: Mapping[str, Estimate | None], cfg: ScorecardConfig, product: str
) -> _WindowScore:
    z = z_of(cfg.level)
    window = series.over(days)
    dims: dict[str, Estimate | None] = {}
    signals: dict[str, tuple[SignalScore, ...]] = {}
    for dim in DIMENSIONS:
        scored: list[tuple[SignalScore, float]] = []
        for spec in cfg.signals[dim]:
            value = ESTIMATORS[spec.metric].estimate(window, z)
            base = Estimate.exact(cfg.slo_ms(product)) if spec.kind == "slo" else refs.get(spec.metric)
            score = score_interval(spec.kind, value, base, spec.bad) if value is not None and base is not None else None
            scored.append((
                SignalScore(spec.metric, value.value if value else None, base.value if base else None,
                            score.value if score else None, spec.kind, value, base, score),
                spec.weight,
            ))  # fmt: skip
        signals[dim] = tuple(s for s, _ in scored)
        dims[dim] = _weighted([(s.score_interval, w) for s, w in scored if s.score_interval is not None])
    composite = _weighted([(e, cfg.weights[d]) for d in DIMENSIONS if (e := dims[d]) is not None])
    return _WindowScore(dims, composite, signals)


def _reference_days(series: _Series, day: date, cfg: ScorecardConfig) -> list[date]:
    """``day``'s reference: the earliest ``baseline_days`` days with data within the ``reference_lookback_days``
    ending on ``day``, before ``day``'s window; for a product whose first day is within that lookback, its first
    ``young_reference_days``.

    A young product's reference does not grow with it: "all its days before the window" would take in the days
    of a decline that began at its start, and drift with it as the week before the period did. Nor does it
    switch to "its earliest two weeks" once it has them before its window: those take in half of a decline that
    began at its start, and a reference that moves in the middle of the period bends the trend the period is
    tested for (28 days of a decline from the first day: the switch came on day 21).
    """
    first = day - timedelta(days=cfg.reference_lookback_days - 1)
    window_start = day - timedelta(days=cfg.window_days - 1)
    available = sorted(d for d in series.values if first <= d <= day)
    if series.values and min(series.values) >= first:  # born within the lookback: its first days, fixed
        return available[: min(cfg.young_reference_days, cfg.baseline_days)]
    return [d for d in available if d < window_start][: cfg.baseline_days]


def _eras(
    series: _Series, releases: list[tuple[str, datetime]], refs: Mapping[str, Estimate | None], cfg: ScorecardConfig,
    product: str,
) -> list[ReleaseEra]:  # fmt: skip
    eras: list[ReleaseEra] = []
    starts = {d: datetime.combine(d, time(), UTC) for d in series.values}
    for i, (version, released_at) in enumerate(releases):
        end = releases[i + 1][1] if i + 1 < len(releases) else None
        # A day belongs to the release that was the newest at its start (00:00 UTC).
        days = [d for d, t in starts.items() if released_at <= t and (end is None or t < end)]
        if len(days) < cfg.release_trend.min_days:
            continue
        composite = _score_window(series, days, refs, cfg, product).composite
        eras.append(ReleaseEra(version, released_at, len(days), composite.value if composite else None))
    return eras


def _declining(eras: list[ReleaseEra], cfg: ScorecardConfig, floor: float) -> bool:
    """The composite fell by ``min_drop`` at each of the last releases and ended below the composite floor."""
    scores = [e.composite for e in eras if e.composite is not None][-cfg.release_trend.releases :]
    if len(scores) < cfg.release_trend.releases or scores[-1] >= floor:
        return False
    return all(b <= a - cfg.release_trend.min_drop for a, b in zip(scores, scores[1:], strict=False))


@dataclass(frozen=True)
class _Status:
    """One dimension on one day of the walk."""

    score: Estimate | None
    trend: Trend | None
    declining: bool
    below: bool


def _status(dim: str, day: date, scored: Mapping[date, _WindowScore], cfg: ScorecardConfig, floor: float) -> _Status:
    est = scored[day].dimensions[dim]
    span = [day - timedelta(days=i) for i in range(cfg.period_days - 1, -1, -1)]
    points = [
        (float(i), e.value) for i, d in enumerate(span)
        if d in scored and not scored[d].in_reference and (e := scored[d].dimensions[dim])
    ]  # fmt: skip
    tr = trend(points, overlap=cfg.window_days) if len(points) >= cfg.trend.min_points else None
    declining = bool(
        tr is not None and tr.p < cfg.trend.alpha and -tr.slope * (points[-1][0] - points[0][0]) >= cfg.trend.min_drop
    )
    confident = est is not None and est.high < floor
    # On a trend, a dimension is below when its point score is under the floor and its interval excludes recovery.
    falling = declining and est is not None and est.value < floor and est.high <= floor + cfg.exit_margin
    return _Status(est, tr, declining, confident or falling)


@dataclass
class _Flag:
    """The hysteresis walk's result."""

    candidate: bool = False
    since: date | None = None
    held: list[str] = field(default_factory=list)
    entered: dict[str, Any] | None = None
    cleared: dict[str, Any] | None = None


def _walk(walk: list[date], status: Mapping[date, Mapping[str, _Status]], cfg: ScorecardConfig) -> _Flag:
    """Walks the days in order: enter on sustained evidence, leave only on recovery (see the module doc)."""
    flag = _Flag()
    held: set[str] = set()
    for i, day in enumerate(walk):
        today = status[day]
        recent = walk[max(0, i - cfg.period_days + 1) : i + 1]
        if not flag.candidate:
            counts = {dim: sum(1 for d in recent if status[d][dim].below) for dim in DIMENSIONS}
            entering = [dim for dim in DIMENSIONS if today[dim].below and counts[dim] >= cfg.min_days_below]
            if len(entering) >= cfg.min_dimensions_below:
                flag.candidate, flag.since, held = True, day, set(entering)
                flag.entered = {"day": day.isoformat(), "dimensions": entering,
                                "days_below": {d: counts[d] for d in entering}, "of_days": len(recent)}  # fmt: skip
                flag.cleared = None
            continue
        still = set()
        for dim in held | {d for d in DIMENSIONS if today[d].below}:
            s = today[dim]
            exit_level = cfg.floors[dim] + cfg.exit_margin
            if s.below or s.score is None or s.score.value <= exit_level:
                still.add(dim)
        if len(still) < cfg.min_dimensions_below:
            recovered = {d: rounded(e.value, 1) for d in sorted(held - still) if (e := today[d].score) is not None}
            flag.cleared = {"day": day.isoformat(), "recovered": recovered,
                            "above": {d: cfg.floors[d] + cfg.exit_margin for d in recovered}}  # fmt: skip
            flag.candidate, flag.since = False, None
        held = still
    flag.held = [d for d in DIMENSIONS if d in held] if flag.candidate else []
    return flag


def _scorecard(
    product: str, series: _Series, releases: list[tuple[str, datetime]], period: list[date], cfg: ScorecardConfig,
    now: datetime,
) -> tuple[Scorecard, _WindowScore]:  # fmt: skip
    """One product's scorecard over ``period`` (its last complete days, oldest first), from an in-memory series."""
    last = period[-1]
    # The walk: the period, after as many days of warm-up, so the period starts from a settled state. Each day is
    # scored against its own reference, so a day's verdict depends on the data up to it, not on when it is read.
    walk = [period[0] - timedelta(days=cfg.period_days - i) for i in range(cfg.period_days)] + list(period)
    scored: dict[date, _WindowScore] = {}
    cache: dict[tuple[date, ...], dict[str, Estimate | None]] = {}
    for day in walk:
        window = [day - timedelta(days=i) for i in range(cfg.window_days - 1, -1, -1)]
        ref_days = tuple(_reference_days(series, day, cfg))
        if ref_days not in cache:
            cache[ref_days] = _references(series, list(ref_days), cfg)
        in_reference = not set(window).isdisjoint(ref_days)
        scored[day] = replace(_score_window(series, window, cache[ref_days], cfg, product), in_reference=in_reference)
    reference = _reference_days(series, last, cfg)
    refs = cache[tuple(reference)]
    status = {day: {dim: _status(dim, day, scored, cfg, cfg.floors[dim]) for dim in DIMENSIONS} for day in walk}
    flag = _walk(walk, status, cfg)
    today = scored[last]
    dims: dict[str, DimensionScore] = {}
    for dim in DIMENSIONS:
        s = status[last][dim]
        dims[dim] = DimensionScore(
            dim, s.score.value if s.score else None, cfg.floors[dim], s.below,
            sum(1 for d in period if status[d][dim].below), s.trend.slope if s.trend else None, today.signals[dim],
            score_low=s.score.low if s.score else None, score_high=s.score.high if s.score else None,
            trend_p=s.trend.p if s.trend else None, declining=s.declining,
        )  # fmt: skip
    comp_floor = weighted_mean((cfg.floors[d], cfg.weights[d]) for d in DIMENSIONS) or 0.0
    comp_points = [
        (float(i), c.value) for i, d in enumerate(period)
        if not scored[d].in_reference and (c := scored[d].composite) is not None
    ]  # fmt: skip
    comp_trend = trend(comp_points, overlap=cfg.window_days)
    comp = today.composite
    composite = DimensionScore(
        COMPOSITE, comp.value if comp else None, comp_floor, comp is not None and comp.high < comp_floor,
        sum(1 for d in period if (c := scored[d].composite) is not None and c.high < comp_floor),
        comp_trend.slope if comp_trend else None, score_low=comp.low if comp else None,
        score_high=comp.high if comp else None, trend_p=comp_trend.p if comp_trend else None,
    )  # fmt: skip
    eras = _eras(series, releases, refs, cfg, product)
    declining = _declining(eras, cfg, comp_floor)
    evidence: list[dict[str, Any]] = []
    for dim in DIMENSIONS:
        d = dims[dim]
        if d.below_floor:
            evidence.append({
                "kind": "dimension_below_floor", "dimension": dim, "score": rounded(d.score, 1),
                "score_ci": [rounded(d.score_low, 1), rounded(d.score_high, 1)], "floor": d.floor,
                "days_below": d.days_below, "period_days": len(period), "declining": d.declining,
                "trend_per_day": rounded(d.trend, 2), "trend_p": rounded(d.trend_p, 4),
                "baseline_days": [b.isoformat() for b in reference[:1] + reference[-1:]],
                "signals": [s.to_json() for s in d.signals if s.score is not None and s.score < 100],
            })  # fmt: skip
    if declining:
        n = cfg.release_trend.releases
        evidence.append({
            "kind": "composite_declining_over_releases", "min_drop": cfg.release_trend.min_drop,
            "releases": [e.to_json() for e in eras if e.composite is not None][-n:],
        })  # fmt: skip
    candidate = flag.candidate or declining
    if candidate:
        reasons = []
        if flag.candidate and flag.entered is not None:
            entered = flag.entered
            reasons.append(
                f"since {entered['day']}: {len(entered['dimensions'])} dimensions below floor together, each on >= "
                f"{cfg.min_days_below} of {entered['of_days']} days ("
                + ", ".join(f"{d} {n} days" for d, n in entered["days_below"].items())
                + f"); still not recovered: {', '.join(flag.held)}"
            )
        if declining:
            reasons.append(f"composite fell over the last {cfg.release_trend.releases} releases")
        evidence.insert(0, {
            "kind": "redesign_candidate", "reasons": reasons, "dimensions": flag.held or [d for d in DIMENSIONS
            if dims[d].below_floor], "since": flag.since.isoformat() if flag.since else None,
            "entered": flag.entered,
            "exit": f"leaves when fewer than {cfg.min_dimensions_below} of its dimensions stay at or under "
                    f"floor + {cfg.exit_margin:g}",
        })  # fmt: skip
    elif flag.cleared is not None:
        evidence.append({"kind": "flag_cleared", **flag.cleared})
    policy = {
        "level": cfg.level, "period_days": cfg.period_days, "min_days_below": cfg.min_days_below,
        "min_dimensions_below": cfg.min_dimensions_below, "exit_margin": cfg.exit_margin,
    }  # fmt: skip
    card = Scorecard(
        product, now, last, dims, composite, candidate, tuple(evidence), tuple(eras),
        (reference[0], reference[-1]) if reference else None, flag.since if flag.candidate else None, policy,
    )  # fmt: skip
    return card, today


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def lookback_days(cfg: ScorecardConfig) -> int:
    """Complete days an evaluation reads: the walk (two periods), and each of its days' reference lookback."""
    return 2 * cfg.period_days - 1 + max(cfg.reference_lookback_days, cfg.window_days)


def score_product(
    product: str,
    days: Mapping[date, Mapping[str, float]],
    now: datetime,
    *,
    config: ScorecardConfig | None = None,
    releases: Sequence[tuple[str, datetime]] = (),
) -> Scorecard:
    """One product's scorecard as of ``now`` from in-memory daily values (what :func:`compute_scorecards` loads).

    ``days`` maps a complete UTC day to the catalog values the signals need
    (:data:`alerts.estimates.ESTIMATORS` names them, plus ``sessions``,
    ``requests`` and ``dau``); only the days an evaluation at ``now`` would
    read are used. For simulators and tests: the same arithmetic as the store's.
    """
    cfg = config or load_config()
    now = _aware(now)
    last = now.date() - timedelta(days=1)
    first = last - timedelta(days=lookback_days(cfg) - 1)
    values = {d: dict(v) for d, v in days.items() if first <= d <= last}
    all_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    period = all_days[-cfg.period_days :]
    card, _ = _scorecard(product, _Series(all_days, values), list(releases), period, cfg, now)
    return card


def compute_scorecards(
    client: Client, database: str, now: datetime, *, config: ScorecardConfig | None = None
) -> list[Scorecard]:
    """Every product's scorecard as of ``now`` (reads complete UTC days before ``now`` only), sorted by product."""
    cfg = config or load_config()
    now = _aware(now)
    last = now.date() - timedelta(days=1)  # the last complete UTC day
    first = last - timedelta(days=lookback_days(cfg) - 1)
    _, series = _load(client, database, cfg, first, last)
    releases = released_versions(client, database, now)
    period = [last - timedelta(days=i) for i in range(cfg.period_days - 1, -1, -1)]
    cards = []
    for product in sorted(series):
        card, _ = _scorecard(product, series[product], releases.get(product, []), period, cfg, now)
        cards.append(card)
    cards = _with_portfolio(cards)
    for c in cards:
        log.info(
            "event=scorecard product=%s candidate=%s composite=%s below=%s",
            c.product, c.redesign_candidate, rounded(c.composite.score, 1), ",".join(c.dimensions_below) or "-",
        )  # fmt: skip
    return cards


def _with_portfolio(cards: list[Scorecard]) -> list[Scorecard]:
    """Adds each dimension's median over all products (context for a PM; the flag does not use it)."""
    medians: dict[str, float | None] = {}
    for dim in (*DIMENSIONS, COMPOSITE):
        scores = [s for c in cards if (s := (c.composite if dim == COMPOSITE else c.dimensions[dim]).score) is not None]
        medians[dim] = median(scores) if scores else None
    out = []
    for c in cards:
        dims = {n: replace(d, portfolio_median=medians[n]) for n, d in c.dimensions.items()}
        out.append(replace(c, dimensions=dims, composite=replace(c.composite, portfolio_median=medians[COMPOSITE])))
    return out


def store_scorecards(client: Client, database: str, scorecards: Sequence[Scorecard], at: datetime) -> None:
    """One insert into ``product_scorecards``: a row per product and dimension, plus its 'composite' row."""
    rows: list[list[Any]] = []
    at = _aware(at)
    for card in scorecards:
        doc = card.to_json()
        for name, d in [*card.dimensions.items(), (COMPOSITE, card.composite)]:
            if name == COMPOSITE:
                evidence = doc
            else:  # the dimension's facts, and them in a sentence: what the table's rows print
                evidence = {"product": card.product, "dimension": name, **doc["dimensions"][name]}
                if d.score is not None:
                    evidence["sentences"] = [dimension_sentence(name, doc["dimensions"][name], doc)]
            rows.append([
                at, card.product, name, d.score if d.score is not None else math.nan, d.floor, int(d.below_floor),
                d.days_below, d.trend if d.trend is not None else math.nan, int(card.redesign_candidate),
                json.dumps(evidence, sort_keys=True),
            ])  # fmt: skip
    if rows:
        client.insert(f"{database}.product_scorecards", rows, column_names=_COLUMNS)


def redesign_samples(
    client: Client, database: str, now: datetime, *, store: bool = False, config: ScorecardConfig | None = None
) -> list[Sample]:
    """One sample per product: 1.0 if it is a redesign candidate, else 0.0, with its evidence."""
    cards = compute_scorecards(client, database, now, config=config)
    if store:
        store_scorecards(client, database, cards, now)
    return [sample(card) for card in cards]


def sample(card: Scorecard) -> Sample:
    """A scorecard as the evaluator's :class:`Sample` (volume: unlimited - the card's intervals weigh its volume)."""
    doc = card.to_json()
    return Sample(
        labels={"product": card.product},
        value=1.0 if card.redesign_candidate else 0.0,
        evidence={
            "dimensions_below_floor": card.dimensions_below,
            "composite": rounded(card.composite.score, 1),
            "scores": {n: rounded(d.score, 1) for n, d in card.dimensions.items()},
            "evidence": doc["evidence"],
            "sentences": doc["sentences"],
        },
    )
