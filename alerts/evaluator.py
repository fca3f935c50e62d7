"""The evaluator: runs the rule groups that are due, persists their alerts' state, and notifies.

* :func:`build_evaluator` loads the rules (refusing to start on any bad file)
  and the notifiers configured in the settings;
* :meth:`Evaluator.evaluate` runs every rule group that is due, moves its
  alerts through the state machine (:mod:`alerts.statemachine`), persists the
  state in one insert (:mod:`alerts.statestore`), queues notifications (never
  blocking on them) and returns an :class:`EvaluationReport`; call it from one
  thread at a time (the worker's ClickHouse executor, or ``pulse alerts run``).

The evaluator restores its alerts from ``alert_events`` on its first
evaluation, so a restart neither re-notifies nor forgets nor resolves early.
A firing alert's ``endsAt`` counts from the wall clock at send time, and
``startsAt`` and a resolved alert's ``endsAt`` are capped at it: the same as
Prometheus in live operation (evaluation time = wall clock); when evaluating
at another event time (backfills, replays, tests) Alertmanager, which judges
by its own clock, would otherwise see a firing alert as expired or a resolved
one as still firing.
Signal sources are called with ``store=True`` by the live evaluator (they
read the health job's stored verdicts and scorecards, :mod:`alerts.health`,
or compute and store them when there are none); the backtest
(:mod:`alerts.backtest`) calls them with ``store=False`` and computes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alerts import statestore
from alerts.notify.alertmanager import alertmanager_notifiers
from alerts.notify.message import Notification, Notifier, generator_url
from alerts.notify.webhook import WebhookNotifier
from alerts.rules import RuleSet, load_rules, rules_paths
from alerts.sources import SignalFn, StoreSource, default_signals
from alerts.statemachine import Alert, Transition, advance, due
from pipeline.settings import AlertSettings, Settings
from pipeline.telemetry import (
    ALERT_EVALUATION_FAILURES,
    ALERT_EVALUATION_SECONDS,
    ALERT_EVALUATIONS,
    ALERTS_ACTIVE,
    LAST_EVALUATION,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

# A group is due when its interval has passed, give or take this much scheduling jitter.
DUE_SLACK_S = 1.0


def _wall() -> datetime:
    return datetime.now(UTC)


def utc(t: datetime) -> datetime:
    """Naive times are UTC (what ClickHouse returns and the CLI parses)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass
class EvaluationReport:
    """What one :meth:`Evaluator.evaluate` call did."""

    at: datetime
    groups: list[str] = field(default_factory=list)  # groups evaluated (the others were not due)
    transitions: list[Transition] = field(default_factory=list)
    firing: int = 0
    pending: int = 0
    nodata: int = 0
    notifications: int = 0
    rows_written: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "groups": self.groups,
            "transitions": [t.to_json() for t in self.transitions],
            "firing": self.firing,
            "pending": self.pending,
            "nodata": self.nodata,
            "notifications": self.notifications,
            "rows_written": self.rows_written,
            "errors": self.errors,
        }


class Evaluator:
    """Evaluates a rule set on a schedule, persists alert state, and notifies."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        database: str,
        interval_s: float = 60.0,
        resend_delay_s: float = 60.0,
        notifiers: Sequence[Notifier] = (),
        dashboard_url: str = "http://127.0.0.1:6066",
        grafana_url: str | None = None,
        signals: Mapping[str, SignalFn] | None = None,
        clock: Callable[[], datetime] = _wall,
    ) -> None:
        self.rules = rules
        self.database = database
        self.interval_s = interval_s
        self.resend_delay_s = resend_delay_s
        self.notifiers = list(notifiers)
        self.dashboard_url = dashboard_url
        self.grafana_url = grafana_url
        self.signals = signals
        self.clock = clock
        self.alerts: dict[str, dict[str, Alert]] = {r.name: {} for r in rules.rules}
        self._last_run: dict[str, datetime] = {}
        self._restored = False

    def restore(self, client: Client) -> int:
        """Read the alerts' newest states back from the store; returns how many were restored."""
        n = 0
        for alert, _at in statestore.load(client, self.database):
            if alert.alertname in self.alerts:
                self.alerts[alert.alertname][alert.fingerprint] = alert
                n += 1
        self._restored = True
        log.info("event=alert_state_restored alerts=%d", n)
        return n

    def _interval(self, group_interval: float | None) -> float:
        return group_interval or self.interval_s

    def evaluate(self, client: Client, now: datetime | None = None) -> EvaluationReport:
        """Evaluate the due groups at ``now`` (default: the wall clock); never raises for a notifier failure."""
        now = utc(now or self.clock())
        if not self._restored:
            self.restore(client)
        report = EvaluationReport(at=now)
        source = StoreSource(client, self.database, self.signals, store_signals=True)
        rows: list[tuple[Alert, str]] = []
        outgoing: list[Notification] = []
        for group in self.rules.groups:
            interval = self._interval(group.interval_s)
            last = self._last_run.get(group.name)
            if last is not None and now < last + timedelta(seconds=interval - DUE_SLACK_S):
                continue
            started = time.monotonic()
            report.groups.append(group.name)
            for rule in group.rules:
                try:
                    samples = source.samples(rule, now)
                except Exception as e:  # noqa: BLE001 - one failing rule must not stop the others
                    ALERT_EVALUATION_FAILURES.labels(group.name).inc()
                    report.errors.append(f"group {group.name!r}, rule {rule.name!r}: {type(e).__name__}: {e}")
                    log.error("event=rule_failed group=%s alert=%s error=%r", group.name, rule.name, str(e))
                    # As in Prometheus: a rule whose query failed keeps its alerts as they were.
                    rows += [(a, "") for a in self.alerts[rule.name].values()]
                    continue
                step = advance(rule, self.alerts[rule.name], samples, now)
                rows += step.rows
                report.transitions += step.transitions
                report.nodata += len(step.nodata)
            self._last_run[group.name] = now
            ALERT_EVALUATIONS.labels(group.name).inc()
            ALERT_EVALUATION_SECONDS.labels(group.name).observe(time.monotonic() - started)
            group_alerts = [a for r in group.rules for a in self.alerts[r.name].values()]
            valid_for = timedelta(seconds=4 * max(interval, self.resend_delay_s))
            wall = self.clock()
            outgoing += [self._notification(a, wall, valid_for) for a in due(group_alerts, now, self.resend_delay_s)]
        for t in report.transitions:  # product and version are event strings: %r quotes and escapes them
            log.info(
                "event=alert_transition alertname=%s state=%s product=%r version=%r value=%s",
                t.alertname, t.state, t.labels.get("product", ""), t.labels.get("version", ""), t.value,
            )  # fmt: skip
        try:
            report.rows_written = statestore.write(client, self.database, rows, now)
        except Exception as e:  # noqa: BLE001 - the page still goes out; the next evaluation writes again
            report.errors.append(f"persisting alert state: {type(e).__name__}: {e}")
            log.error("event=alert_state_write_failed error=%r", str(e))
        if outgoing:
            for notifier in self.notifiers:
                try:
                    notifier.notify(outgoing)
                except Exception as e:  # noqa: BLE001 - a notifier never fails an evaluation
                    log.error("event=notify_failed notifier=%s error=%r", getattr(notifier, "name", "?"), str(e))
        report.notifications = len(outgoing)
        self._update_gauges(report)
        LAST_EVALUATION.set(time.time())
        return report

    def _notification(self, alert: Alert, wall: datetime, valid_for: timedelta) -> Notification:
        # Alertmanager judges startsAt/endsAt by its own clock: cap event times at the wall clock, so an
        # alert evaluated ahead of it (a replay) is not "resolved in the future", i.e. still firing.
        resolved = alert.state == "resolved" and alert.resolved_at is not None
        starts = min(alert.fired_at or alert.active_at, wall)
        ends = min(alert.resolved_at, wall) if resolved and alert.resolved_at else wall + valid_for
        return Notification(
            fingerprint=alert.fingerprint,
            status="resolved" if resolved else "firing",
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=starts,
            ends_at=max(ends, starts),
            generator_url=generator_url(alert.labels, self.dashboard_url, self.grafana_url),
        )

    def _update_gauges(self, report: EvaluationReport) -> None:
        for name, alerts in self.alerts.items():
            for st in ("pending", "firing"):
                n = sum(1 for a in alerts.values() if a.state == st)
                ALERTS_ACTIVE.labels(name, st).set(n)
                if st == "firing":
                    report.firing += n
                else:
                    report.pending += n

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush the notifiers' queues, waiting at most ``timeout_s`` in all."""
        deadline = time.monotonic() + timeout_s
        for notifier in self.notifiers:
            notifier.close(max(0.0, deadline - time.monotonic()))


def build_notifiers(settings: AlertSettings, *, external_url: str = "") -> list[Notifier]:
    """The notifiers these settings configure: one per Alertmanager, a webhook, both or none.

    ``external_url`` is the webhook body's ``externalURL``: where its reader finds us (the dashboard).
    """
    out: list[Notifier] = []
    out += alertmanager_notifiers(settings.alertmanager_urls)
    if settings.alert_webhook_url is not None:
        out.append(WebhookNotifier(settings.alert_webhook_url, external_url=external_url))
    return out


def build_evaluator(settings: Settings, *, signals: Mapping[str, SignalFn] | None = None) -> Evaluator:
    """The evaluator for these settings (its alert, store and web sections); raises RuleFileError on a bad rule file."""
    rules = load_rules(rules_paths(settings))
    if signals is None:  # the health job's stored results count while two of its runs old
        signals = default_signals(timedelta(seconds=2 * settings.health_interval_s))
    return Evaluator(
        rules,
        database=settings.clickhouse_database,
        interval_s=settings.alert_eval_interval_s,
        resend_delay_s=settings.alert_resend_delay_s,
        notifiers=build_notifiers(settings, external_url=settings.grafana_url or settings.dashboard_base_url),
        dashboard_url=settings.dashboard_base_url,
        grafana_url=settings.grafana_url,
        signals=signals,
    )
