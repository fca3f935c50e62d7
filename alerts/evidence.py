"""Evidence in sentences: the one place verdicts and scorecards are put into words (pure; no I/O).

Every place a person reads evidence - the CLI, the built-in view, Grafana's
tables, notifications and pages - shows the sentences written here: the
writers store them with the evidence (``sentences`` in a scorecard row,
``sentence`` in a verdict row), and the readers print what is stored.

:func:`verdict_sentence` says a release verdict with its numbers: both values,
the predecessor mix, the comparison, the ratio's bound and the volumes.

:func:`scorecard_sentences` takes a scorecard's JSON (``Scorecard.to_json()``,
what ``pulse scorecard --format json`` and ``/api/scorecard`` return) or the
:class:`alerts.scorecard.Scorecard` itself, and says what a PM needs: whether
the product is a redesign candidate, since when and why; each dimension below
its floor with its score's interval, its trend and its weakest signals - from
what to what against which reference week, with an interval; how the flag
clears. Numbers are in the signal's own unit (%, points, ms or s, hours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

_MINUS = "\u2212"


def _signed(x: float, digits: int = 0) -> str:
    text = f"{abs(x):.{digits}f}"
    return f"{_MINUS}{text}" if round(x, digits) < 0 else text


def _pct(digits: int) -> Callable[[float], str]:
    return lambda x: f"{_signed(100 * x, digits)}%"


def _ms(x: float) -> str:
    return f"{x / 1000:.1f} s" if x >= 1000 else f"{x:.0f} ms"


_SIGNALS: dict[str, tuple[str, Callable[[float], str]]] = {
    "dau": ("daily active users", lambda x: f"{x:.0f}"),
    "conversion_rate": ("conversion", _pct(1)),
    "crash_free_sessions": ("crash-free sessions", _pct(2)),
    "task_success_rate": ("task success", _pct(0)),
    "nps": ("NPS", _signed),
    "csat": ("CSAT", lambda x: f"{x:.2f}"),
    "tickets_per_1k_sessions": ("tickets per 1k sessions", lambda x: f"{x:.1f}"),
    "time_to_resolve_h": ("time to resolve", lambda x: f"{x:.1f} h"),
    "latency_p95_ms": ("p95 latency", _ms),
    "error_rate": ("error rate", _pct(1)),
}


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _signal(s: Mapping[str, Any], level: str) -> str | None:
    label, fmt = _SIGNALS.get(s["signal"], (s["signal"].replace("_", " "), lambda x: f"{x:.3g}"))
    value, base = s.get("value"), s.get("baseline")
    if value is None or base is None:
        return None
    lo, hi = s.get("value_ci") or [None, None]
    ci = f" ({level} CI {fmt(lo)} to {fmt(hi)})" if lo is not None and hi is not None else ""
    if s.get("kind") == "slo":
        return f"{label} is {fmt(value)} against its {fmt(base)} SLO{ci}"
    verb = "fell" if value < base else "rose" if value > base else "held"
    return f"{label} {verb} from {fmt(base)} to {fmt(value)}{ci}"


def _level(doc: Mapping[str, Any]) -> str:
    return f"{100 * doc.get('policy', {}).get('level', 0.95):.0f}%"


def dimension_sentence(name: str, d: Mapping[str, Any], doc: Mapping[str, Any]) -> str:
    """One dimension (``DimensionScore.to_json()``) in a sentence; ``doc`` gives the policy and reference quoted."""
    return _dimension(name, d, doc, _level(doc))


def _dimension(name: str, d: Mapping[str, Any], doc: Mapping[str, Any], level: str) -> str:
    policy = doc.get("policy", {})
    lo, hi = d.get("score_ci") or [None, None]
    text = f"{name[:1].upper()}{name[1:]} scores {d['score']:.0f}/100"
    if lo is not None and hi is not None:
        text += f" ({level} CI {lo:.0f} to {hi:.0f})"
    text += f" against a floor of {d['floor']:.0f}"
    if d.get("days_below"):
        text += f", below floor on {d['days_below']} of the last {policy.get('period_days', '?')} days"
    if d.get("declining") and d.get("trend_per_day") is not None:
        p = d.get("trend_p") or 0.0
        text += f", falling {abs(d['trend_per_day']):.1f} points a day (p {'< 0.001' if p < 0.001 else f'= {p:.3f}'})"
    weak = sorted(
        (s for s in d.get("signals", []) if s.get("score") is not None and s["score"] < 100), key=lambda s: s["score"]
    )
    parts = [p for s in weak[:3] if (p := _signal(s, level))]
    ref = doc.get("reference")
    if parts:
        relative = any(s.get("kind") != "slo" for s in weak[:3])
        against = f"against the reference {ref[0]}..{ref[1]}, " if ref and relative else ""
        text += ": " + against + "; ".join(parts)
    return text + "."


def missing_signals(doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per dimension, the signals without data (no value): what the product's instrumentation does not send."""
    out: dict[str, list[str]] = {}
    for name, d in doc.get("dimensions", {}).items():
        missing = [s["signal"] for s in d.get("signals", []) if s.get("value") is None]
        if missing:
            out[name] = missing
    return out


def _missing_sentence(doc: Mapping[str, Any]) -> str | None:
    missing = missing_signals(doc)
    if not missing:
        return None
    dims = doc.get("dimensions", {})
    parts = []
    for name, signals in missing.items():
        labels = [_SIGNALS.get(s, (s.replace("_", " "),))[0] for s in signals]
        unscored = dims.get(name, {}).get("score") is None
        parts.append(f"{name} ({_and(labels)}{'; not scored' if unscored else ''})")
    return "Not measured, no data yet: " + "; ".join(parts) + "."


def scorecard_sentences(card: Any) -> list[str]:
    """The scorecard in sentences: the verdict and its reasons, each dimension below floor, how the flag clears."""
    doc: Mapping[str, Any] = card if isinstance(card, Mapping) else card.to_json()
    policy = doc.get("policy", {})
    level = _level(doc)
    product = doc["product"]
    dims: Mapping[str, Mapping[str, Any]] = doc.get("dimensions", {})
    evidence = {e.get("kind"): e for e in doc.get("evidence", [])}
    below = [n for n, d in dims.items() if d.get("below_floor")]
    out: list[str] = []
    candidate = evidence.get("redesign_candidate")
    if doc.get("redesign_candidate") and candidate is not None:
        held = list(candidate.get("dimensions") or below)
        reasons = []
        if candidate.get("since"):
            entered = candidate.get("entered") or {}
            days = entered.get("days_below", {})
            names = list(entered.get("dimensions", held))
            counts = _and([str(days[n]) for n in names if n in days])
            of = entered.get("of_days", policy.get("period_days", "?"))
            reasons.append(
                _and(names)
                + " went below their floors together"
                + (f" (below on {counts} of the {of} days up to then)" if counts else "")
            )
        if "composite_declining_over_releases" in evidence:
            eras = evidence["composite_declining_over_releases"]["releases"]
            steps = " \u2192 ".join(f"{e['version']} ({e['composite']:.0f})" for e in eras if e.get("composite"))
            reasons.append(f"its composite score fell release after release, {steps}")
        since = f" since {candidate['since']}" if candidate.get("since") else ""
        out.append(f"{product} is a redesign candidate{since}: " + "; and ".join(reasons) + ".")
        focus = [n for n in dims if n in held or n in below]
    else:
        cleared = evidence.get("flag_cleared")
        if cleared:
            rec = cleared.get("recovered", {})
            out.append(
                f"{product} left the redesign candidates on {cleared['day']}: "
                + _and([f"{n} recovered to {s:.0f} (above {cleared['above'][n]:.0f})" for n, s in rec.items()] or
                       ["its dimensions recovered"])
                + "."
            )  # fmt: skip
        k = policy.get("min_dimensions_below", 2)
        if below:
            out.append(
                f"{product} is not a redesign candidate: only {_and(below)} {'is' if len(below) == 1 else 'are'} "
                f"below floor, and a redesign takes {k} dimensions below floor for a sustained period."
            )
        else:
            out.append(f"{product} is not a redesign candidate: no dimension is below its floor.")
        focus = below
    for name in focus:
        if dims[name].get("score") is not None:
            out.append(_dimension(name, dims[name], doc, level))
    if doc.get("redesign_candidate") and candidate is not None and candidate.get("since"):
        margin = policy.get("exit_margin", 0)
        out.append(
            f"The flag clears when fewer than {policy.get('min_dimensions_below', 2)} of these dimensions stay at or "
            f"under their floor + {margin:g} points."
        )
    if (missing := _missing_sentence(doc)) is not None:
        out.append(missing)
    return out


_VERDICT_SIGNALS = {"crash_rate": "crash rate", "error_rate": "error rate", "latency": "p95 latency"}


def verdict_sentence(v: Any) -> str:
    """A release verdict (:class:`alerts.regression.Verdict`) in words, with the numbers on-call decides on."""
    unit, fmt = ("ms", "{:.0f}") if v.signal == "latency" else ("", "{:.2%}")
    name = _VERDICT_SIGNALS[v.signal]
    mix = ", ".join(f"{version} ({share:.0%})" for version, share in v.baseline_mix) or v.baseline_version
    how = "same hours (canary)" if v.comparison == "canary" else f"the {v.baseline_window_days()} before"
    if v.details.get("during") == "canary":  # a thin canary's week arm decided
        how += " (during its canary)"
    if v.verdict == "insufficient_data":
        return f"{name}: no traffic to compare yet on one side ({v.candidate_volume} vs {v.baseline_volume})"
    text = (f"{name} {fmt.format(v.candidate_value)}{unit} on {v.version} vs "
            f"{fmt.format(v.baseline_value)}{unit} on {mix}, {how}")  # fmt: skip
    lo, hi = v.bounds
    if math.isfinite(lo) and lo > 0 or math.isfinite(hi):
        text += f"; ratio {ratio_range(lo, hi)} (always-valid {1 - v.details.get('alpha', 0.01):.0%} CI)"
    text += f"; n = {v.candidate_volume} vs {v.baseline_volume}; {v.verdict.replace('_', ' ')}"
    since = v.details.get("severe_since")
    if v.severe and since:  # severe at an earlier look: a sequential test's rejection stands
        text += f" - severe since {since[:16].replace('T', ' ')} UTC"
    elif v.severe:
        text += " - severe"
    ended = v.details.get("bake_ended_by_next_arrival")
    if ended:  # a successor, hotfix or rollback arrived: this verdict no longer moves
        text += f" (final: the next version arrived {_utc(ended)})"
    elif v.details.get("final"):  # the bake ran its course: later looks read the same hours
        text += f" (final since {_utc(v.details['moves_until'])})"
    return text


def _utc(iso: str) -> str:
    return f"{iso[:16].replace('T', ' ')} UTC"


def ratio_range(lo: float, hi: float) -> str:
    """A ratio's bounds as ``x0.81 to x2.4`` (``x120`` above ten, not ``x1.2e+02``; ``xinf`` when unbounded)."""
    return f"{_x(lo)} to {_x(hi)}"


def _x(r: float) -> str:
    if r <= 0:
        return "x0"
    return "xinf" if not math.isfinite(r) else (f"x{r:.2g}" if r < 10 else f"x{r:.0f}")
