"""The state machine (alerts/statemachine.py): every transition, hysteresis, min volume, restarts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.rules import LoadedRule, Rule, compile_annotations
from alerts.sample import Sample
from alerts.statemachine import Alert, advance, due, fingerprint, needs_sending

T0 = datetime(2026, 1, 1, tzinfo=UTC)
M = timedelta(minutes=1)


def make_rule(**over: Any) -> LoadedRule:
    spec: dict[str, Any] = {
        "alert": "HighCrashRate",
        "metric": "crash_rate",
        "window": "5m",
        "op": ">",
        "threshold": 0.05,
        "labels": {"severity": "page"},
        "annotations": {"summary": "{{ product }} crash rate {{ value | percent }} over {{ threshold | percent }}"},
    }
    spec.update(over)
    rule = Rule.model_validate(spec)
    templates, problems = compile_annotations(rule)
    assert not problems
    return LoadedRule(rule, "g", "test.yaml", templates)


def s(value: float, product: str = "checkout", volume: float = math.inf) -> Sample:
    return Sample({"product": product}, value, volume)


def run(rule: LoadedRule, values: list[float | None], start: datetime = T0, **kw: Any) -> list[tuple[int, str]]:
    """Evaluate once a minute on one series (None = series absent); returns (minute, state entered)."""
    alerts: dict[str, Alert] = {}
    out = []
    for i, v in enumerate(values):
        samples = [] if v is None else [s(v, **kw)]
        step = advance(rule, alerts, samples, start + i * M)
        out += [(i, t.state) for t in step.transitions]
    return out


def test_for_zero_fires_at_once_and_resolves_when_the_condition_stops() -> None:
    assert run(make_rule(), [0.01, 0.2, 0.2, 0.01]) == [(1, "firing"), (3, "resolved")]


def test_pending_then_firing_after_for() -> None:
    rule = make_rule(**{"for": "2m"})
    assert run(rule, [0.2, 0.2, 0.2, 0.2]) == [(0, "pending"), (2, "firing")]


def test_pending_that_stops_matching_is_dropped_and_starts_over() -> None:
    rule = make_rule(**{"for": "2m"})
    assert run(rule, [0.2, 0.2, 0.01, 0.2, 0.2, 0.2]) == [
        (0, "pending"),
        (2, "inactive"),
        (3, "pending"),
        (5, "firing"),
    ]


def test_keep_firing_for_holds_then_resolves_and_a_match_restarts_its_clock() -> None:
    rule = make_rule(keep_firing_for="3m")
    # match at 0, no match 1..3 (held), match at 4 restarts the clock, no match 5..7 held, resolved at 8
    values = [0.2, 0.0, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0]
    assert run(rule, values) == [(0, "firing"), (8, "resolved")]
    # Without the match at 4: resolved at 4, one interval after keep_firing_for ran out (as Prometheus).
    assert run(rule, [0.2, 0.0, 0.0, 0.0, 0.0]) == [(0, "firing"), (4, "resolved")]


def test_resolved_alert_is_kept_15_minutes_then_dropped_and_rematch_starts_pending() -> None:
    rule = make_rule(**{"for": "1m"})
    alerts: dict[str, Alert] = {}
    advance(rule, alerts, [s(0.2)], T0)
    advance(rule, alerts, [s(0.2)], T0 + M)
    advance(rule, alerts, [s(0.0)], T0 + 2 * M)
    (alert,) = alerts.values()
    assert alert.state == "resolved" and alert.resolved_at == T0 + 2 * M
    step = advance(rule, alerts, [s(0.0)], T0 + 16 * M)  # 14 min after resolution: still kept
    assert list(alerts.values())[0].state == "resolved" and not step.transitions
    step = advance(rule, alerts, [s(0.0)], T0 + 17 * M)  # 15 min: dropped, recorded as a bookkeeping row
    assert alerts == {} and [t for _, t in step.rows] == ["dropped"] and not step.transitions
    # A resolved alert that matches again starts over as a new pending alert.
    advance(rule, alerts, [s(0.2)], T0 + 20 * M)
    advance(rule, alerts, [s(0.2)], T0 + 21 * M)
    advance(rule, alerts, [s(0.0)], T0 + 22 * M)
    step = advance(rule, alerts, [s(0.3)], T0 + 23 * M)
    (again,) = alerts.values()
    assert again.state == "pending" and again.active_at == T0 + 23 * M and again.fired_at is None
    assert [t.state for t in step.transitions] == ["pending"]


FLAPPING = [0.06, 0.04, 0.06, 0.045, 0.055, 0.04, 0.06, 0.02]


def test_flapping_without_resolve_threshold_fires_and_resolves_repeatedly() -> None:
    states = [st for _, st in run(make_rule(), FLAPPING)]
    assert states == ["firing", "resolved"] * 4


def test_resolve_threshold_holds_a_firing_alert_until_the_value_crosses_it() -> None:
    rule = make_rule(resolve_threshold=0.03)
    assert run(rule, FLAPPING) == [(0, "firing"), (7, "resolved")]
    # Hysteresis applies only once firing: a pending alert needs the real threshold.
    pending = make_rule(resolve_threshold=0.03, **{"for": "2m"})
    assert run(pending, [0.06, 0.04, 0.06]) == [(0, "pending"), (1, "inactive"), (2, "pending")]


def test_resolve_threshold_for_a_lower_is_worse_rule() -> None:
    rule = make_rule(metric="crash_free_sessions", op="<", threshold=0.99, resolve_threshold=0.995)
    assert run(rule, [0.98, 0.992, 0.994, 0.996]) == [(0, "firing"), (3, "resolved")]


def test_min_volume_reports_nodata_instead_of_matching() -> None:
    rule = make_rule(min_volume={"metric": "sessions", "min": 200})
    alerts: dict[str, Alert] = {}
    step = advance(rule, alerts, [s(0.5, volume=20)], T0)
    assert (
        alerts == {}
        and not step.transitions
        and step.nodata == [{"product": "checkout", "severity": "page", "alertname": "HighCrashRate"}]
    )
    step = advance(rule, alerts, [s(0.5, volume=200)], T0 + M)
    assert [t.state for t in step.transitions] == ["firing"] and not step.nodata
    # NaN (no data in the window) is nodata too.
    step = advance(make_rule(), {}, [s(math.nan)], T0)
    assert not step.transitions and len(step.nodata) == 1


def test_nodata_neither_holds_nor_extends_a_firing_alert() -> None:
    rule = make_rule(min_volume={"metric": "sessions", "min": 200}, keep_firing_for="2m")
    alerts: dict[str, Alert] = {}
    advance(rule, alerts, [s(0.5, volume=500)], T0)
    for i in (1, 2):  # nodata: still firing within keep_firing_for of the last match
        step = advance(rule, alerts, [s(0.5, volume=10)], T0 + i * M)
        assert list(alerts.values())[0].state == "firing" and step.nodata
    assert list(alerts.values())[0].last_match_at == T0  # nodata did not refresh the clock
    step = advance(rule, alerts, [s(0.5, volume=10)], T0 + 3 * M)
    assert [t.state for t in step.transitions] == ["resolved"]


def test_nodata_drops_a_pending_alert() -> None:
    rule = make_rule(min_volume={"metric": "sessions", "min": 200}, **{"for": "5m"})
    alerts: dict[str, Alert] = {}
    advance(rule, alerts, [s(0.5, volume=500)], T0)
    step = advance(rule, alerts, [s(0.5, volume=5)], T0 + M)
    assert [t.state for t in step.transitions] == ["inactive"] and alerts == {}


def test_series_are_independent_and_labelled() -> None:
    rule = make_rule()
    alerts: dict[str, Alert] = {}
    step = advance(rule, alerts, [s(0.2, "checkout"), s(0.01, "search"), s(0.3, "feed")], T0)
    fired = sorted(t.labels["product"] for t in step.transitions)
    assert fired == ["checkout", "feed"]
    a = next(a for a in alerts.values() if a.labels["product"] == "feed")
    assert a.labels == {"product": "feed", "severity": "page", "alertname": "HighCrashRate"}
    assert a.annotations == {"summary": "feed crash rate 30.0% over 5.0%"}
    assert a.fingerprint == fingerprint({"alertname": "HighCrashRate", "severity": "page", "product": "feed"})


def test_fingerprint_is_stable_and_depends_on_every_label() -> None:
    a = fingerprint({"alertname": "A", "product": "x"})
    assert a == fingerprint({"product": "x", "alertname": "A"})
    assert a != fingerprint({"alertname": "B", "product": "x"})
    assert a != fingerprint({"alertname": "A", "product": "x", "version": "1"})


def test_notifications_follow_prometheus_resend_rules() -> None:
    rule = make_rule(**{"for": "1m"})
    alerts: dict[str, Alert] = {}
    advance(rule, alerts, [s(0.2)], T0)
    assert due(alerts.values(), T0, 60) == []  # pending: never sent
    advance(rule, alerts, [s(0.2)], T0 + M)
    assert len(due(alerts.values(), T0 + M, 120)) == 1  # firing: at once
    advance(rule, alerts, [s(0.2)], T0 + 2 * M)
    assert due(alerts.values(), T0 + 2 * M, 120) == []  # within the resend delay
    advance(rule, alerts, [s(0.2)], T0 + 3 * M)
    assert len(due(alerts.values(), T0 + 3 * M, 120)) == 1  # resend delay passed
    advance(rule, alerts, [s(0.0)], T0 + 4 * M)
    (alert,) = alerts.values()
    assert alert.state == "resolved" and needs_sending(alert, T0 + 4 * M, 120)  # resolution: at once
    due([alert], T0 + 4 * M, 120)
    assert not needs_sending(alert, T0 + 5 * M, 120)
    assert needs_sending(alert, T0 + 6 * M, 120)  # resolved alerts are re-sent while kept


# --- restarts: the state serialised after any evaluation continues exactly --------------------------------

SCRIPT = [0.2, 0.2, 0.01, 0.2, 0.2, 0.2, None, 0.02, 0.02, 0.06, 0.2, 0.01, 0.01, 0.01, 0.2, None, None, None]


def _scripted(rule: LoadedRule, restart_after: int | None) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
    alerts: dict[str, Alert] = {}
    out = []
    sent = []
    for i, v in enumerate(SCRIPT):
        now = T0 + i * M
        samples = [] if v is None else [s(v, volume=500 if i != 9 else 5)]
        step = advance(rule, alerts, samples, now)
        out += [(i, t.state) for t in step.transitions]
        sent += [(i, a.state) for a in due(alerts.values(), now, 120)]
        if restart_after == i:  # what the store keeps: every alert's full state, read back into a new dict
            alerts = {fp: Alert.from_dict(a.to_dict()) for fp, a in alerts.items()}
    final = sorted((a.to_dict() for a in alerts.values()), key=lambda d: d["fingerprint"])
    return out + [(-1, repr(sent))], final


@pytest.mark.parametrize("restart_after", range(len(SCRIPT)))
def test_a_restart_between_any_two_evaluations_changes_nothing(restart_after: int) -> None:
    rule = make_rule(
        **{"for": "1m"}, keep_firing_for="2m", resolve_threshold=0.03, min_volume={"metric": "sessions", "min": 100}
    )
    assert _scripted(rule, restart_after) == _scripted(rule, None)
    # The script exercises every state, so the comparison is not vacuous.
    states = {st for _, st in _scripted(rule, None)[0]}
    assert {"pending", "firing", "resolved", "inactive"} <= states
