"""End to end with the real Alertmanager: the scenario's regressing release pages on-call exactly once.

The test starts ``prometheus-alertmanager`` on a free loopback port with a config
derived from the shipped one (receivers pointed at a webhook server in this
test, short group timers), fills an embedded store with the synthetic scenario
and steps the evaluator through event time across the regressing release,
with the shipped ``product.yaml`` rules and the real release-regression signal:

* exactly one firing notification for the regressing release reaches the
  on-call receiver, also across an evaluator restart;
* while that page fires, a redesign ticket for the same product (a fake
  redesign signal) is inhibited: Alertmanager reports it suppressed and the
  PM receiver gets nothing; once the page resolves the ticket reaches the PM;
* stepping past the regression judge's lookback (the release is no longer
  judged) resolves the page: exactly one resolved notification.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.alertmanager import Alertmanager, Hooks, config_for_tests, running_alertmanager, wait_for
from support.scenario_store import Scenario, close_scenario, open_scenario

from alerts.evaluator import Evaluator
from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.rules import load_rules, shipped_rules_dir
from alerts.sample import Sample
from alerts.sources import default_signals
from alerts.statestore import status

pytestmark = pytest.mark.integration


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.close()


@pytest.fixture
def alertmanager(tmp_path: Path, hooks: Hooks) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "am", config_for_tests(hooks.url)) as am:
        yield am


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    # The data end at the current hour: any hour of the day (a severe verdict stands once reached, so the
    # page neither resolves nor fires again during the bake; tests/alerts/test_regression_stands.py).
    sc = open_scenario(tmp_path / "store", days=2, users_per_product=150)
    yield sc
    close_scenario(sc)


class Redesign:
    """A fake redesign-candidate source: flags ``product`` once switched on."""

    def __init__(self, product: str) -> None:
        self.product = product
        self.on = False

    def __call__(self, client: Any, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        return [Sample({"product": self.product}, 1.0 if self.on else 0.0, evidence={"dimensions": ["test"]})]


def test_regression_pages_once_inhibits_the_pm_ticket_and_resolves_once(
    scenario: Scenario, alertmanager: Alertmanager, hooks: Hooks
) -> None:
    story = scenario.story
    product, version = story["regressing_product"], story["regressing_version"]
    released = datetime.fromisoformat(story["regression_released_at"])
    rules = load_rules([shipped_rules_dir() / "product.yaml"])
    redesign = Redesign(product)
    signals = {**default_signals(), "redesign_candidate": redesign}
    evaluators: list[Evaluator] = []

    def new_evaluator() -> Evaluator:
        ev = Evaluator(
            rules, database=scenario.database, resend_delay_s=60, signals=signals,
            notifiers=[AlertmanagerNotifier(alertmanager.url, attempts=3, backoff_s=0.2)],
        )  # fmt: skip
        evaluators.append(ev)
        return ev

    def active(alertname: str) -> list[str]:
        """The states `pulse alerts status` shows for ``alertname`` on ``product`` (pending and firing)."""
        shown = status(scenario.client, scenario.database)
        return [a["state"] for a in shown if a["alertname"] == alertname and a["labels"]["product"] == product]

    def page_state() -> str | None:
        states = active("ReleaseRegression")
        return states[0] if states else None

    def oncall(status: str) -> list[dict[str, Any]]:
        return [
            a for a in hooks.alerts("/oncall", alertname="ReleaseRegression", product=product, version=version)
            if a["status"] == status
        ]  # fmt: skip

    try:
        ev = new_evaluator()
        now = released - timedelta(minutes=30)
        fired_at = None
        while now <= released + timedelta(hours=20):
            report = ev.evaluate(scenario.client, now)
            assert not report.errors, report.errors
            if page_state() == "firing":
                fired_at = now
                break
            now += timedelta(minutes=30)
        assert fired_at is not None and fired_at > released, "the regression never paged"
        wait_for("the page at the on-call receiver", lambda: oncall("firing"))

        # Restart: a new evaluator from the store continues the firing alert and does not re-send it early.
        ev.close(5)
        ev = new_evaluator()
        report = ev.evaluate(scenario.client, now + timedelta(seconds=30))
        assert page_state() == "firing" and report.notifications == 0 and not report.transitions

        # While the page fires, the product becomes a redesign candidate: the PM ticket is inhibited.
        redesign.on = True
        for _ in range(3):
            now += timedelta(minutes=30)
            ev.evaluate(scenario.client, now)  # firing alerts are re-sent every resend delay: no new notification
        assert page_state() == "firing"
        assert active("RedesignCandidate") == ["firing"]

        def ticket_suppressed() -> bool:
            found = alertmanager.alerts(alertname="RedesignCandidate", product=product)
            return bool(found) and found[0]["status"]["state"] == "suppressed"

        wait_for("the redesign ticket to be inhibited", ticket_suppressed)
        (ticket,) = alertmanager.alerts(alertname="RedesignCandidate", product=product)
        assert ticket["status"]["inhibitedBy"], ticket
        time.sleep(3)  # several group intervals (1s): an uninhibited ticket would have been sent by now
        assert hooks.alerts("/pm", product=product) == []
        assert len(oncall("firing")) == 1

        # Past the judge's lookback the release is no longer judged: no sample, the page resolves.
        ev.close(5)
        ev = new_evaluator()
        later = released + timedelta(days=7, hours=1)
        report = ev.evaluate(scenario.client, later)
        assert [t.state for t in report.transitions if t.alertname == "ReleaseRegression"] == ["resolved"]
        ev.evaluate(scenario.client, later + timedelta(minutes=5))  # resolved alerts are re-sent: still one
        wait_for("the resolved notification", lambda: oncall("resolved"))
        # With the page gone the ticket is no longer inhibited and reaches the PM.
        wait_for("the redesign ticket at the PM receiver", lambda: hooks.alerts("/pm", product=product))
        time.sleep(2)
        assert len(oncall("firing")) == 1 and len(oncall("resolved")) == 1
        (resolved,) = oncall("resolved")
        assert resolved["labels"]["severity"] == "page" and resolved["labels"]["baseline_version"]
        assert resolved["generatorURL"].endswith(f"/products/{product}?version={version}")
        assert hooks.alerts("/pm", alertname="ReleaseRegression") == []
        assert hooks.alerts("/oncall", alertname="RedesignCandidate") == []
    finally:
        for e in evaluators:
            e.close(5)
