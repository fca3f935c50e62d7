"""The alert state machine, with Prometheus' semantics, as pure code (no I/O, no clock).

Per rule, :func:`advance` takes the alerts so far, the samples of one
evaluation and its time, and moves every series:

* inactive -> **pending** on the first match (``active_at``);
* pending -> **firing** once it has matched for ``for`` (``for: 0`` fires at once);
  a pending alert that stops matching is dropped (-> inactive);
* a firing alert that stops matching stays firing while
  ``now - last_match_at <= keep_firing_for`` - with evaluations every interval
  that is exactly Prometheus' count from the first evaluation that did not match -
  then **resolved** (``resolved_at``);
* resolved alerts are kept (and re-notified) for :data:`RESOLVED_RETENTION_S`
  (15 min), then dropped; a resolved alert that matches again starts over as pending.

Hysteresis: a firing alert is held to the rule's ``resolve_threshold`` instead
of its threshold, so it keeps matching until the value crosses that.

*nodata* (volume under the rule's ``min_volume``, or no value: NaN) is decided
to mean "no evidence": it is not a match, so it never creates, promotes or
refreshes an alert, and it does not reset a firing alert's ``keep_firing_for``
clock either - that clock keeps running from the last real match. A series
that vanishes behaves the same. So low traffic can neither page nor hold a
page open forever; to ride through quiet hours, give the rule a
``keep_firing_for``. Series in nodata are reported in :attr:`Step.nodata`.

Alerts are keyed by :func:`fingerprint`: a stable hash of their sorted labels,
``alertname`` included. :meth:`Alert.to_dict` / :meth:`Alert.from_dict` carry
the whole state (``keep_firing_for`` progress and ``last_sent_at`` included),
so an evaluator restarted from them continues exactly where it was.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from alerts.rules import LoadedRule
from alerts.sample import Sample

RESOLVED_RETENTION_S = 15 * 60
State = Literal["pending", "firing", "resolved", "inactive"]


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable id of an alert: sha256 of its sorted labels (alertname included), 16 hex digits."""
    blob = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def alert_labels(rule: LoadedRule, series: Mapping[str, str]) -> dict[str, str]:
    """An alert's labels: the series' labels, the rule's labels, and ``alertname``."""
    return {**dict(series), **rule.rule.labels, "alertname": rule.name}


@dataclass
class Alert:
    """One alert (a rule x one series) and everything needed to continue it after a restart."""

    alertname: str
    group: str
    fingerprint: str
    labels: dict[str, str]
    state: State
    active_at: datetime
    value: float = math.nan
    volume: float = math.inf
    annotations: dict[str, str] = field(default_factory=dict)
    fired_at: datetime | None = None
    last_match_at: datetime | None = None
    resolved_at: datetime | None = None
    last_sent_at: datetime | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        """When the current state began."""
        if self.state == "firing" and self.fired_at is not None:
            return self.fired_at
        if self.state == "resolved" and self.resolved_at is not None:
            return self.resolved_at
        return self.active_at

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            out[k] = v.isoformat() if isinstance(v, datetime) else v
        out["value"] = None if math.isnan(self.value) else self.value
        out["volume"] = None if math.isinf(self.volume) else self.volume
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Alert:
        times = ("active_at", "fired_at", "last_match_at", "resolved_at", "last_sent_at")
        kw: dict[str, Any] = {
            k: (datetime.fromisoformat(v) if k in times and v is not None else v) for k, v in d.items()
        }
        kw["value"] = math.nan if kw.get("value") is None else float(kw["value"])
        kw["volume"] = math.inf if kw.get("volume") is None else float(kw["volume"])
        kw["labels"] = dict(kw["labels"])
        kw["annotations"] = dict(kw.get("annotations") or {})
        kw["evidence"] = dict(kw.get("evidence") or {})
        return cls(**kw)


@dataclass(frozen=True)
class Transition:
    """An alert entering ``state`` at ``at`` (``inactive`` = a pending alert dropped)."""

    alertname: str
    fingerprint: str
    labels: Mapping[str, str]
    state: State
    at: datetime
    value: float

    def to_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "labels": dict(self.labels),
            "state": self.state,
            "at": self.at.isoformat(),
            "value": None if math.isnan(self.value) else self.value,
        }


@dataclass
class Step:
    """What one evaluation of one rule did."""

    rows: list[tuple[Alert, str]] = field(default_factory=list)  # (alert, transition or "") to persist
    transitions: list[Transition] = field(default_factory=list)
    nodata: list[dict[str, str]] = field(default_factory=list)  # labels of series reporting nodata


def _nodata(rule: LoadedRule, sample: Sample) -> bool:
    if math.isnan(sample.value):
        return True
    mv = rule.rule.min_volume
    return mv is not None and not sample.volume >= mv.min  # NaN volume counts as too little


def advance(rule: LoadedRule, alerts: MutableMapping[str, Alert], samples: Iterable[Sample], now: datetime) -> Step:
    """Evaluate ``rule`` at ``now`` on ``samples``, updating ``alerts`` (fingerprint -> Alert) in place."""
    step = Step()
    entered: dict[str, State] = {}
    touched: set[str] = set()
    r = rule.rule
    for sample in samples:
        labels = alert_labels(rule, sample.labels)
        fp = fingerprint(labels)
        if fp in touched:  # a source that yields a series twice: the first one counts
            continue
        touched.add(fp)
        alert = alerts.get(fp)
        live = alert if alert is not None and alert.state in ("pending", "firing") else None
        if _nodata(rule, sample):
            step.nodata.append(labels)
            if live is not None and not math.isnan(sample.value):
                live.value, live.volume = sample.value, sample.volume
            touched.discard(fp)  # handled below like a missing series
            continue
        if not r.matches(sample.value, firing=live is not None and live.state == "firing"):
            if live is not None:
                live.value, live.volume = sample.value, sample.volume
            touched.discard(fp)
            continue
        if live is None:
            live = Alert(rule.name, rule.group, fp, labels, "pending", active_at=now)
            alerts[fp] = live
            entered[fp] = "pending"
        live.value, live.volume = sample.value, sample.volume
        live.last_match_at = now
        live.evidence = dict(sample.evidence)
        live.annotations = rule.render(sample.labels, sample.value, sample.volume, sample.evidence)
        if live.state == "pending" and (now - live.active_at) >= timedelta(seconds=r.for_):
            live.state, live.fired_at = "firing", now
            entered[fp] = "firing"
    for fp, alert in list(alerts.items()):
        if fp in touched:
            continue
        if alert.state == "pending":
            alert.state = "inactive"
            entered[fp] = "inactive"
            del alerts[fp]
            step.rows.append((alert, "inactive"))
        elif alert.state == "firing":
            last = alert.last_match_at or alert.active_at
            if now - last > timedelta(seconds=r.keep_firing_for):
                alert.state, alert.resolved_at = "resolved", now
                entered[fp] = "resolved"
        elif alert.state == "resolved":
            assert alert.resolved_at is not None
            if now - alert.resolved_at >= timedelta(seconds=RESOLVED_RETENTION_S):
                alert.state = "inactive"
                del alerts[fp]
                step.rows.append((alert, "dropped"))  # bookkeeping only, no transition shown to people
    for fp, alert in alerts.items():
        step.rows.append((alert, entered.get(fp, "")))
    for fp, state in entered.items():
        a = next(a for a, _ in step.rows if a.fingerprint == fp)
        step.transitions.append(Transition(a.alertname, fp, dict(a.labels), state, now, a.value))
    return step


def needs_sending(alert: Alert, now: datetime, resend_delay_s: float) -> bool:
    """Prometheus' rule: firing and resolved alerts go out at once, then again every resend delay."""
    if alert.state not in ("firing", "resolved"):
        return False
    if alert.last_sent_at is None:
        return True
    if alert.resolved_at is not None and alert.resolved_at > alert.last_sent_at:
        return True
    return alert.last_sent_at + timedelta(seconds=resend_delay_s) <= now


def due(alerts: Iterable[Alert], now: datetime, resend_delay_s: float) -> list[Alert]:
    """The alerts to notify now; marks them sent at ``now`` (whether or not delivery later succeeds)."""
    out = []
    for alert in alerts:
        if needs_sending(alert, now, resend_delay_s):
            alert.last_sent_at = now
            out.append(alert)
    return out
