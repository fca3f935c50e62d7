"""Four weeks of event-level synth traffic in a real store, and the release judge looked at over all of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.regression import release_verdicts
from support.scenario_store import Scenario

DAYS = 28
LOOK_H = 6  # how often the whole span is looked at for pages (the health job looks every few minutes)


def end_at(hour: int) -> datetime:
    return datetime(2026, 11, 30, hour, tzinfo=UTC)


def pages_over_span(sc: Scenario, end: datetime) -> tuple[dict[tuple[str, str, str], float], set[tuple[str, str]]]:
    """(product, version, signal) -> hours after its release of its first severe verdict, at looks every LOOK_H;
    and every (product, version) judged at some look."""
    first: dict[tuple[str, str, str], float] = {}
    judged: set[tuple[str, str]] = set()
    t = end - timedelta(days=DAYS) + timedelta(hours=LOOK_H)
    while t <= end:
        for v in release_verdicts(sc.client, sc.database, t):
            judged.add((v.product, v.version))
            if v.severe:
                first.setdefault((v.product, v.version, v.signal), (t - v.released_at) / timedelta(hours=1))
        t += timedelta(hours=LOOK_H)
    return first, judged
