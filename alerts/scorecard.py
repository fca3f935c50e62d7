"""Redesign scorecards: a 0-100 score per product and dimension, floors, and the redesign-candidate flag.

What a product manager reads (the formula, in words):

* **Signals.** Each of the four dimensions reads a few catalog metrics
  (``alerts/scorecard.yaml`` lists them, :mod:`alerts.scorecard_config` reads
  it): business impact - daily active users and conversion rate; customer
  experience - crash-free sessions, task success, NPS and CSAT; post-launch
  support - tickets per 1k sessions and time to resolve; performance - p95
  latency against its SLO and the error rate.
* **Signal score** (:mod:`alerts.scoring`). 100 means "as good as this
  product's own baseline", 0 means "as bad as the configured ``bad`` anchor",
  linear in between and clipped:
  DAU at 60% of baseline scores 0, crash rate (1 - crash-free) at 3x baseline
  scores 0, NPS 40 points under baseline scores 0, p95 latency at 2x its SLO
  scores 0 (within the SLO: 100). A product is compared with itself, so a
  product that is naturally small or slow is not punished for it.
* **Baseline.** The week before the evaluation period; for a product (or a
  store) younger than that, its first complete days of data.
* **Dimension score** = weighted mean of its signals' scores; **composite** =
  weighted mean of the dimension scores. A signal without data (no NPS
  answers, a zero baseline, NaN) has no score and is left out, never a crash;
  a window with fewer than ``min_sessions`` ended sessions has no scores.
* **Daily evaluation.** For each of the last ``period_days`` complete UTC days
  the scores read a trailing window of ``window_days`` days (volume-weighted
  means of daily values: sessions for session metrics, requests for
  performance; the p95 of a window is the request-weighted mean of daily p95s).
  The current, incomplete day is not read, so a scorecard changes once a day.
* **Floors and the flag.** A dimension *stays below* its floor when it is below
  it on the last complete day and on at least ``min_days_below`` days of the
  period. A product is a **redesign candidate** when at least
  ``min_dimensions_below`` (2) dimensions stay below their floors, or when its
  composite fell release after release (each of the last ``release_trend.releases``
  release eras - the complete days a release was the newest - at least
  ``min_drop`` points under the one before). A product bad on one dimension only
  is not a candidate: that is an alert, not a redesign. The flag is a ticket for
  the PM, never a page.
* **Evidence.** Every dimension below its floor and every release trend comes
  with its signals' values, baselines, scores, days below and the trend
  (least-squares slope of the daily score, points per day).

Cost: one catalog query per evaluation (three SQL statements: minute
aggregates, daily user sketches and tickets, grouped by product and day) plus
one read of ``releases``; everything else is arithmetic in Python. Only data
with event time before ``now`` (in fact before ``now``'s UTC midnight) is read.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import median
from typing import TYPE_CHECKING, Any

from alerts.regression import released_versions
from alerts.sample import Sample
from alerts.scorecard_config import DIMENSIONS, ScorecardConfig, load_config
from alerts.scoring import finite, rounded, signal_score, slope, weighted_mean
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
    signal: str
    value: float | None
    baseline: float | None
    score: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "value": rounded(self.value),
            "baseline": rounded(self.baseline),
            "score": rounded(self.score),
        }


@dataclass(frozen=True)
class DimensionScore:
    """One dimension (or the composite) of a product's scorecard on the last complete day."""

    name: str
    score: float | None
    floor: float
    below_floor: bool
    days_below: int
    trend: float | None  # points per day over the period
    signals: tuple[SignalScore, ...] = ()
    portfolio_median: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "score": rounded(self.score, 1),
            "floor": self.floor,
            "below_floor": self.below_floor,
            "days_below": self.days_below,
            "trend_per_day": rounded(self.trend, 2),
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

    @property
    def dimensions_below(self) -> list[str]:
        return [n for n, d in self.dimensions.items() if d.below_floor]

    def to_json(self) -> dict[str, Any]:
        """What ``pulse scorecard --format json`` prints for one product."""
        return {
            "product": self.product,
            "at": self.at.isoformat(),
            "day": self.day.isoformat() if self.day else None,
            "redesign_candidate": self.redesign_candidate,
            "composite": self.composite.to_json(),
            "dimensions": {n: d.to_json() for n, d in self.dimensions.items()},
            "releases": [r.to_json() for r in self.releases],
            "evidence": list(self.evidence),
        }


# ---------------------------------------------------------------------------------------------- the daily series


@dataclass
class _Series:
    """One product's complete days: per day the catalog values and the volumes that weigh them."""

    days: list[date]
    values: dict[date, dict[str, float]]

    def window(self, metric: str, volume: str, days: Iterable[date]) -> float | None:
        pairs: list[tuple[float | None, float]] = []
        for d in days:
            row = self.values.get(d)
            if row is None:
                continue
            # Daily actives are a mean over days; every other metric weighs a day by its volume.
            weight = 1.0 if metric == "dau" else row.get(volume, 0.0)
            pairs.append((row.get(metric, math.nan), weight))
        return weighted_mean(pairs)

    def sessions(self, days: Iterable[date]) -> float:
        return sum(self.values[d].get("sessions", 0.0) for d in days if d in self.values)


def _metrics(cfg: ScorecardConfig) -> list[str]:
    names = {s.metric for specs in cfg.signals.values() for s in specs}
    return sorted(names | {"sessions", "requests"})


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
    dimensions: dict[str, float | None]
    composite: float | None
    signals: dict[str, tuple[SignalScore, ...]]


def _score_window(
    series: _Series, days: list[date], baseline: list[date], cfg: ScorecardConfig, product: str
) -> _WindowScore:
    if series.sessions(days) < cfg.min_sessions:
        empty: dict[str, float | None] = dict.fromkeys(DIMENSIONS)
        return _WindowScore(empty, None, {d: () for d in DIMENSIONS})
    dims: dict[str, float | None] = {}
    signals: dict[str, tuple[SignalScore, ...]] = {}
    for dim in DIMENSIONS:
        scored = []
        for spec in cfg.signals[dim]:
            value = series.window(spec.metric, spec.volume, days)
            base = cfg.slo_ms(product) if spec.kind == "slo" else series.window(spec.metric, spec.volume, baseline)
            score = signal_score(spec.kind, math.nan if value is None else value, math.nan if base is None else base,
                                 spec.bad)  # fmt: skip
            scored.append((SignalScore(spec.metric, value, base, score), spec.weight))
        signals[dim] = tuple(s for s, _ in scored)
        dims[dim] = weighted_mean((s.score, w) for s, w in scored)
    composite = weighted_mean((dims[d], cfg.weights[d]) for d in DIMENSIONS)
    return _WindowScore(dims, composite, signals)


def _baseline_days(series: _Series, period_start: date, cfg: ScorecardConfig) -> list[date]:
    before = [period_start - timedelta(days=i) for i in range(cfg.baseline_days, 0, -1)]
    if series.sessions(before) >= cfg.min_sessions and sum(1 for d in before if d in series.values) >= min(
        cfg.young_baseline_days, cfg.baseline_days
    ):
        return [d for d in before if d in series.values]
    # Younger than the period plus a baseline: its first complete days stand in for "before".
    return sorted(series.values)[: cfg.young_baseline_days]


def _eras(
    series: _Series, releases: list[tuple[str, datetime]], baseline: list[date], cfg: ScorecardConfig, product: str
) -> list[ReleaseEra]:
    eras: list[ReleaseEra] = []
    for i, (version, released_at) in enumerate(releases):
        end = releases[i + 1][1] if i + 1 < len(releases) else None
        # A day belongs to the release that was the newest at its start (00:00 UTC).
        starts = {d: datetime.combine(d, time(), UTC) for d in series.values}
        days = [d for d, t in starts.items() if released_at <= t and (end is None or t < end)]
        if len(days) < cfg.release_trend.min_days:
            continue
        eras.append(
            ReleaseEra(version, released_at, len(days), _score_window(series, days, baseline, cfg, product).composite)
        )
    return eras


def _declining(eras: list[ReleaseEra], cfg: ScorecardConfig, floor: float) -> bool:
    """The composite fell by ``min_drop`` at each of the last releases and ended below the composite floor."""
    scores = [e.composite for e in eras if e.composite is not None][-cfg.release_trend.releases :]
    if len(scores) < cfg.release_trend.releases or scores[-1] >= floor:
        return False
    return all(b <= a - cfg.release_trend.min_drop for a, b in zip(scores, scores[1:], strict=False))


def _scorecard(
    product: str, series: _Series, releases: list[tuple[str, datetime]], period: list[date], cfg: ScorecardConfig,
    now: datetime,
) -> tuple[Scorecard, _WindowScore]:  # fmt: skip
    baseline = _baseline_days(series, period[0], cfg)
    daily: list[tuple[date, _WindowScore]] = []
    for day in period:
        window = [day - timedelta(days=i) for i in range(cfg.window_days - 1, -1, -1)]
        daily.append((day, _score_window(series, window, baseline, cfg, product)))
    last_day, today = daily[-1]
    dims: dict[str, DimensionScore] = {}
    for dim in DIMENSIONS:
        floor = cfg.floors[dim]
        points = [((d - period[0]).days, w.dimensions[dim]) for d, w in daily if w.dimensions[dim] is not None]
        below = sum(1 for _, s in points if s is not None and s < floor)
        score = today.dimensions[dim]
        dims[dim] = DimensionScore(
            dim, score, floor, score is not None and score < floor, below,
            slope([(float(x), float(y)) for x, y in points if y is not None]), today.signals[dim],
        )  # fmt: skip
    comp_points = [(float((d - period[0]).days), w.composite) for d, w in daily if w.composite is not None]
    comp_floor = weighted_mean((cfg.floors[d], cfg.weights[d]) for d in DIMENSIONS) or 0.0
    composite = DimensionScore(
        COMPOSITE, today.composite, comp_floor, today.composite is not None and today.composite < comp_floor,
        sum(1 for _, s in comp_points if s is not None and s < comp_floor),
        slope([(x, y) for x, y in comp_points if y is not None]),
    )  # fmt: skip
    sustained = [d for d in DIMENSIONS if dims[d].below_floor and dims[d].days_below >= cfg.min_days_below]
    eras = _eras(series, releases, baseline, cfg, product)
    declining = _declining(eras, cfg, comp_floor)
    evidence: list[dict[str, Any]] = []
    for dim in DIMENSIONS:
        d = dims[dim]
        if d.below_floor:
            evidence.append({
                "kind": "dimension_below_floor", "dimension": dim, "score": rounded(d.score, 1), "floor": d.floor,
                "days_below": d.days_below, "period_days": len(period), "sustained": dim in sustained,
                "trend_per_day": rounded(d.trend, 2),
                "baseline_days": [b.isoformat() for b in baseline[:1] + baseline[-1:]],
                "signals": [s.to_json() for s in d.signals if s.score is not None and s.score < 100],
            })  # fmt: skip
    if declining:
        n = cfg.release_trend.releases
        evidence.append({
            "kind": "composite_declining_over_releases", "min_drop": cfg.release_trend.min_drop,
            "releases": [e.to_json() for e in eras if e.composite is not None][-n:],
        })  # fmt: skip
    candidate = len(sustained) >= cfg.min_dimensions_below or declining
    if candidate:
        reasons = []
        if len(sustained) >= cfg.min_dimensions_below:
            reasons.append(
                f"{len(sustained)} dimensions below floor on >= {cfg.min_days_below} of the last {len(period)} days: "
                + ", ".join(sustained)
            )
        if declining:
            reasons.append(f"composite fell over the last {cfg.release_trend.releases} releases")
        evidence.insert(0, {"kind": "redesign_candidate", "reasons": reasons, "dimensions": sustained})
    card = Scorecard(product, now, last_day, dims, composite, candidate, tuple(evidence), tuple(eras))
    return card, today


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def compute_scorecards(
    client: Client, database: str, now: datetime, *, config: ScorecardConfig | None = None
) -> list[Scorecard]:
    """Every product's scorecard as of ``now`` (reads complete UTC days before ``now`` only), sorted by product."""
    cfg = config or load_config()
    now = _aware(now)
    last = now.date() - timedelta(days=1)  # the last complete UTC day
    lookback = cfg.baseline_days + cfg.window_days - 1 + cfg.period_days
    first = last - timedelta(days=lookback - 1)
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
        dims = {n: _replace(d, medians[n]) for n, d in c.dimensions.items()}
        out.append(Scorecard(c.product, c.at, c.day, dims, _replace(c.composite, medians[COMPOSITE]),
                             c.redesign_candidate, c.evidence, c.releases))  # fmt: skip
    return out


def _replace(d: DimensionScore, portfolio: float | None) -> DimensionScore:
    return DimensionScore(d.name, d.score, d.floor, d.below_floor, d.days_below, d.trend, d.signals, portfolio)


def store_scorecards(client: Client, database: str, scorecards: Sequence[Scorecard], at: datetime) -> None:
    """One insert into ``product_scorecards``: a row per product and dimension, plus its 'composite' row."""
    rows: list[list[Any]] = []
    at = _aware(at)
    for card in scorecards:
        for name, d in [*card.dimensions.items(), (COMPOSITE, card.composite)]:
            evidence = (
                card.to_json() if name == COMPOSITE else {"product": card.product, "dimension": name, **d.to_json()}
            )
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
    """A scorecard as the evaluator's :class:`Sample` (volume: unlimited - the card applied its own minimum)."""
    return Sample(
        labels={"product": card.product},
        value=1.0 if card.redesign_candidate else 0.0,
        evidence={
            "dimensions_below_floor": card.dimensions_below,
            "composite": rounded(card.composite.score, 1),
            "scores": {n: rounded(d.score, 1) for n, d in card.dimensions.items()},
            "evidence": list(card.evidence),
        },
    )
