"""The redesign flag over simulated products with known truth: precision, recall and flag flips.

``pulse eval`` prints these beside the release judge's figures, and
``tests/decisions/test_scorecard_decisions.py`` asserts them per seed. Each
product of :data:`CASES` is simulated day by day (:mod:`alerts.harness.daily`)
for ``span`` days and scored through the scorecard's own arithmetic
(:func:`alerts.scorecard.score_product`) at 06:00 UTC on each of the last
:data:`EVALUATIONS` days, as the health job would. Truth:

* healthy at 15, 50, 120, 400 and 2,000 users a day - never a candidate;
* healthy but for p95 latency over its SLO, at 120 users a day - one bad
  dimension is an alert, not a redesign: never a candidate;
* improving (from a poor start to healthy) - never a candidate;
* a strong decay, 70 -> 30 users a day with everything worse, finished three
  weeks before the end - a candidate on every evaluation (it needs 45 days
  of data);
* the issue's slow decay over the last four weeks at ~100 users a day (DAU
  -45%, NPS +8 -> -69, tickets x2, task success -12 points) - a candidate by
  the end: its truth changes during the evaluations, so it may turn on once
  and never off.

A product whose truth holds over the evaluations is judged on every one of
them, the slow decay at the last. A *flip* is a flag that changes while the
truth holds, or the slow decay's flag clearing once raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from alerts.harness import daily
from alerts.scorecard import score_product
from alerts.scorecard_config import load_config

END = date(2026, 12, 1)  # the data's days end the day before; evaluations at 06:00 UTC up to this day
EVALUATIONS = 14  # daily, the last two weeks
SPANS = (28, 75)  # days of data: a four-week-old store (the held-out scenario's), and one with two-week references
MIN_SPAN = 28  # the slow decay declines over the last four weeks

Truth = Literal["healthy", "redesign", "becomes"]


@dataclass(frozen=True)
class Case:
    scenario: daily.Scenario
    truth: Truth  # never a candidate, one on every evaluation, or one by the end (turned on once)
    min_span: int = 0  # days of data its story needs


CASES: dict[str, Case] = {
    "healthy-15": Case(daily.healthy(15), "healthy"),
    "healthy-50": Case(daily.healthy(50), "healthy"),
    "healthy-120": Case(daily.healthy(120), "healthy"),
    "healthy-400": Case(daily.healthy(400), "healthy"),
    "healthy-2000": Case(daily.healthy(2000), "healthy"),
    "slow-latency-120": Case(daily.slow_latency(120), "healthy"),
    "improving-120": Case(daily.improving(120), "healthy"),
    "strong-decay-70-30": Case(daily.strong_decay(), "redesign", min_span=45),  # ends 22 days before, after 18
    "slow-decay-100": Case(daily.slow_decay(100), "becomes"),
}


@dataclass(frozen=True)
class FlagRun:
    """One product under one seed and span: its flag on each evaluation, oldest first."""

    product: str
    truth: Truth
    seed: int
    span: int
    flags: tuple[bool, ...]

    def judged(self) -> list[tuple[bool, bool]]:
        """(truth, flagged) at each evaluation that counts."""
        if self.truth == "becomes":
            return [(True, self.flags[-1])]
        return [(self.truth == "redesign", f) for f in self.flags]

    def flips(self) -> int:
        pairs = list(zip(self.flags, self.flags[1:], strict=False))
        if self.truth == "becomes":
            return sum(1 for a, b in pairs if a and not b)
        return sum(1 for a, b in pairs if a != b)


def data(product: str, seed: int, span: int) -> dict[date, dict[str, float]]:
    """The product's simulated days under ``seed``: ``span`` complete days ending the day before :data:`END`."""
    return daily.simulate(CASES[product].scenario, END, span, daily.product_seed(product, seed))


def flags(product: str, days: dict[date, dict[str, float]]) -> tuple[bool, ...]:
    """The flag at 06:00 UTC on each of the last :data:`EVALUATIONS` days up to :data:`END`, oldest first."""
    cfg = load_config()
    return tuple(
        score_product(product, days, datetime.combine(END - timedelta(days=k), time(6), UTC), config=cfg)
        .redesign_candidate
        for k in range(EVALUATIONS - 1, -1, -1)
    )  # fmt: skip


def typical(span: int) -> dict[str, Any]:
    """The slow decay on its typical draw (every count at its mean, :class:`~alerts.harness.daily.ExpectedDraws`):
    flagged or not at the end, and how far its two lowest dimensions' upper ends are under their floors (negative:
    over). Flagged here but missed on a seed is that seed's luck - the flag's counterpart of the judge's least
    delay."""
    name = "slow-decay-100"
    days = daily.simulate(daily.slow_decay(100, over_days=min(MIN_SPAN, span)), END, span, 0, expected=True)
    card = score_product(name, days, datetime.combine(END, time(6), UTC), config=load_config())
    margins = sorted(d.floor - d.score_high for d in card.dimensions.values() if d.score_high is not None)[-2:]
    return {"flagged": card.redesign_candidate, "margins": [round(m, 1) for m in margins]}


def run(
    seeds: Iterable[int], spans: Sequence[int] = SPANS, progress: Callable[[str], None] | None = None
) -> list[FlagRun]:
    """Every case under every seed and span (a case whose story needs more days than a span is left out of it)."""
    if any(span < MIN_SPAN for span in spans):
        raise ValueError(f"every span must be at least {MIN_SPAN} days (the slow decay's four weeks), got {spans}")
    out = []
    for span in spans:
        for seed in seeds:
            for product, case in CASES.items():
                if span >= case.min_span:
                    out.append(FlagRun(product, case.truth, seed, span, flags(product, data(product, seed, span))))
            if progress:
                progress(f"redesign {span} days, seed {seed}")
    return out


def summary(runs: list[FlagRun]) -> dict[str, Any]:
    """Precision and recall over the judged evaluations, flips per product-month, and what was judged wrong."""
    judged = [(truth, got) for r in runs for truth, got in r.judged()]
    tp = sum(1 for truth, got in judged if truth and got)
    fp = sum(1 for truth, got in judged if got and not truth)
    fn = sum(1 for truth, got in judged if truth and not got)
    flips = sum(r.flips() for r in runs)
    months = len(runs) * EVALUATIONS / 30
    return {
        "products": len(runs),
        "evaluations": len(judged),
        "candidates": tp + fn,  # evaluations at which the truth is "a candidate"
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "false_flags": fp,
        "missed": fn,
        "flips": flips,
        "flips_per_product_month": flips / months if months else None,
        "wrong": [f"{p} seed {s}" for p, s in sorted({(r.product, r.seed) for r in runs
                  if r.flips() or any(truth != got for truth, got in r.judged())})],
    }  # fmt: skip
