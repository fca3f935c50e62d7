"""Colour thresholds for stat panels and score columns, taken from the policy files the alerts read.

A colour on a dashboard is a claim ("this is bad"), so it must say what the
alerts say: crash-free sessions turn red below the crash-free SLO objective
(``alerts/rules/slo.yaml``), p95 latency amber over the scorecard's latency
SLO and red over the paging rule's threshold, the error rate amber over the
paging rule's resolve threshold and red over its threshold
(``alerts/rules/performance.yaml``), dimension scores red below the
scorecard's floors (``alerts/scorecard.yaml``). A number with no policy
behind it (users, sessions, revenue, tickets) gets one neutral colour:
Grafana's default (red from 80) would colour 150 active users as an outage.

``dashboards`` may not import ``alerts`` (the rooms' arrows), so the files
are read here as data, with the same defaults the alert models use when a
key is absent. Changing a floor or an SLO there changes the dashboards on
the next ``pulse dashboards build``; a test keeps the two in step.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ALERTS = Path(__file__).resolve().parents[1] / "alerts"
SCORECARD = ALERTS / "scorecard.yaml"
RULES = ALERTS / "rules"

NEUTRAL = "blue"
GOOD, WARN, BAD = "green", "orange", "red"

Step = tuple[float | None, str]  # (from this value up, colour); the first step's value is None (-infinity)


@dataclass(frozen=True)
class Policy:
    """The numbers the dashboards colour by, each from its file (see the module docstring)."""

    crash_free_objective: float  # slo.yaml: crash_rate burn-rate objective
    latency_slo_ms: float  # scorecard.yaml: latency_slo_ms
    latency_page_ms: float  # performance.yaml: latency_p95_ms rule threshold
    error_rate_page: float  # performance.yaml: error_rate rule threshold
    error_rate_resolve: float  # performance.yaml: error_rate rule resolve_threshold
    floors: dict[str, float]  # scorecard.yaml: floors per dimension
    slo_signals: tuple[str, ...]  # scorecard.yaml: signals scored against an SLO (their baseline is the SLO)
    weights: dict[str, float]  # scorecard.yaml: weights per dimension (the composite's floor is their mean)

    @property
    def crash_free_good(self) -> float:
        """Green from a crash rate of a quarter of the SLO's budget (98% objective: 99.5%, the mobile norm)."""
        return 1 - (1 - self.crash_free_objective) / 4


def _rules() -> Iterator[dict[str, Any]]:
    for path in sorted(RULES.glob("*.yaml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            yield from group.get("rules", [])


def _rule(metric: str) -> dict[str, Any]:
    """The first shipped rule on ``metric`` (the paging one: rule files list it first)."""
    for rule in _rules():
        if rule.get("metric") == metric:
            return rule
    raise LookupError(f"no alert rule on {metric!r} under {RULES}")


@functools.cache
def policy() -> Policy:
    card = yaml.safe_load(SCORECARD.read_text(encoding="utf-8")) or {}
    objectives = [r["burn_rate"]["objective"] for r in _rules() if r.get("burn_rate", {}).get("metric") == "crash_rate"]
    if not objectives:
        raise LookupError(f"no crash-free burn-rate rule under {RULES}")
    latency, errors = _rule("latency_p95_ms"), _rule("error_rate")
    return Policy(
        crash_free_objective=float(max(objectives)),
        latency_slo_ms=float(card.get("latency_slo_ms", 1000)),
        latency_page_ms=float(latency["threshold"]),
        error_rate_page=float(errors["threshold"]),
        error_rate_resolve=float(errors.get("resolve_threshold", errors["threshold"])),
        floors={str(k): float(v) for k, v in (card.get("floors") or {}).items()},
        weights={str(k): float(v) for k, v in (card.get("weights") or {}).items()},
        slo_signals=tuple(
            sorted(
                {
                    str(s["metric"])
                    for specs in (card.get("signals") or {}).values()
                    for s in specs
                    if s.get("kind") == "slo"
                }
                or {"latency_p95_ms"}
            )
        ),  # fmt: skip
    )


def for_metric(metric: str) -> tuple[Step, ...]:
    """Threshold steps of a catalog metric's stat: from policy where one exists, else one neutral colour."""
    p = policy()
    if metric in ("crash_free_sessions", "crash_free_users"):
        return ((None, BAD), (p.crash_free_objective, WARN), (p.crash_free_good, GOOD))
    if metric in ("latency_p95_ms", "latency_p99_ms", "latency_p50_ms"):
        return ((None, GOOD), (p.latency_slo_ms, WARN), (p.latency_page_ms, BAD))
    if metric == "error_rate":
        return ((None, GOOD), (p.error_rate_resolve, WARN), (p.error_rate_page, BAD))
    return ((None, NEUTRAL),)


def composite_floor() -> float:
    """The composite's floor as the scorecard computes it: the floors' mean, weighted as the dimensions."""
    p = policy()
    weights = {d: p.weights.get(d, 1.0) for d in p.floors}
    return sum(p.floors[d] * w for d, w in weights.items()) / sum(weights.values())


def for_score(dimension: str) -> tuple[Step, ...]:
    """A 0-100 score: red below the dimension's floor, green from it (``composite``: the composite's floor)."""
    floor = composite_floor() if dimension == "composite" else policy().floors[dimension]
    return ((None, BAD), (floor, GOOD))


PIPELINE_RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules" / "pipeline.yml"
EVALUATOR_STALLED_S = 300.0  # the shipped rule's value, for an install without deploy/ (a test keeps them equal)


@functools.cache
def evaluator_stalled_s() -> float:
    """Seconds without an evaluation after which ``PulseEvaluatorStalled`` fires (its ``expr``'s ``> N``).

    ``deploy/`` is not part of the installed packages (``alerts/`` is: package data), so an
    installed ``pulse dashboards build`` falls back to the shipped rule's value.
    """
    if not PIPELINE_RULES.exists():
        return EVALUATOR_STALLED_S
    doc = yaml.safe_load(PIPELINE_RULES.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "PulseEvaluatorStalled":
                return float(str(rule["expr"]).rsplit(">", 1)[1].strip())
    raise LookupError(f"no PulseEvaluatorStalled rule in {PIPELINE_RULES}")


def for_evaluator_age() -> tuple[Step, ...]:
    return ((None, GOOD), (evaluator_stalled_s(), BAD))
