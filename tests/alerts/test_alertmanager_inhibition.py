"""Inhibition with the real Alertmanager and the shipped config: a product's crash-free budget ticket is held
back while a crash-free page for the same product fires, and comes back once the page resolves.

The alerts carry exactly the labels the shipped rules give them (``alerts/rules/slo.yaml``,
``performance.yaml``) and go out through our Alertmanager notifier, as the evaluator sends them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.alertmanager import Alertmanager, Hooks, config_for_tests, running_alertmanager, wait_for

from alerts.notify.alertmanager import AlertmanagerNotifier
from alerts.notify.message import Notification
from alerts.rules import load_rules, shipped_rules_dir
from alerts.statemachine import alert_labels, fingerprint

pytestmark = pytest.mark.integration
RULES = load_rules([shipped_rules_dir()])


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    yield h
    h.close()


@pytest.fixture
def alertmanager(tmp_path: Path, hooks: Hooks) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "am", config_for_tests(hooks.url)) as am:
        yield am


def alert(alertname: str, product: str, *, resolved: bool = False, **series: str) -> Notification:
    labels = alert_labels(RULES.rule(alertname), {"product": product, **series})
    now = datetime.now(UTC)
    return Notification(
        fingerprint=fingerprint(labels), status="resolved" if resolved else "firing", labels=labels,
        annotations={"summary": f"{alertname} {product}"}, starts_at=now - timedelta(minutes=5),
        ends_at=now if resolved else now + timedelta(minutes=10), generator_url=f"http://127.0.0.1:6066/products/{product}",
    )  # fmt: skip


def send(am: Alertmanager, *notes: Notification) -> None:
    n = AlertmanagerNotifier(am.url, attempts=3, backoff_s=0.2)
    assert n.notify(list(notes))
    n.close(5)


def test_a_crash_free_page_holds_back_the_same_products_crash_free_ticket(
    alertmanager: Alertmanager, hooks: Hooks
) -> None:
    ticket = RULES.rule("CrashFreeBudgetTicket").rule.labels
    assert ticket["severity"] == "ticket" and ticket["slo"] == RULES.rule("CrashFreeBudgetFastBurn").rule.labels["slo"]
    # The pages first: Alertmanager's inhibitor learns of new alerts asynchronously, so on a loaded machine a
    # ticket posted with its page could flush (1 s group_wait here, 30 s shipped) before the inhibitor saw it.
    send(alertmanager, alert("CrashFreeBudgetFastBurn", "checkout"), alert("LatencyP95OverSLO", "feed"))
    wait_for("the page at on-call", lambda: hooks.alerts("/oncall", alertname="CrashFreeBudgetFastBurn"))
    send(
        alertmanager,
        alert("CrashFreeBudgetTicket", "checkout"),  # same product, same SLO: held back
        alert("CrashFreeBudgetTicket", "search"),  # no page for search: goes out
        alert("CrashFreeBudgetTicket", "feed"),  # another kind of page does not hold back feed's crash-free ticket
    )
    wait_for("search's ticket", lambda: hooks.alerts("/default", alertname="CrashFreeBudgetTicket", product="search"))
    wait_for("feed's ticket", lambda: hooks.alerts("/default", alertname="CrashFreeBudgetTicket", product="feed"))
    wait_for(
        "checkout's ticket to be inhibited",
        lambda: alertmanager.state(alertname="CrashFreeBudgetTicket", product="checkout") == "suppressed",
    )
    (held,) = alertmanager.alerts(alertname="CrashFreeBudgetTicket", product="checkout")
    (page,) = alertmanager.alerts(alertname="CrashFreeBudgetFastBurn", product="checkout")
    assert held["status"]["inhibitedBy"] == [page["fingerprint"]]
    assert alertmanager.state(alertname="CrashFreeBudgetTicket", product="search") == "active"
    time.sleep(3)  # several group intervals (1s): an uninhibited ticket would have been sent by now
    assert hooks.alerts("/default", product="checkout") == []

    # The page resolves: the ticket is no longer held back and reaches the ticket queue.
    send(alertmanager, alert("CrashFreeBudgetFastBurn", "checkout", resolved=True))
    wait_for(
        "checkout's ticket", lambda: hooks.alerts("/default", alertname="CrashFreeBudgetTicket", product="checkout")
    )
    assert alertmanager.state(alertname="CrashFreeBudgetTicket", product="checkout") == "active"
    assert hooks.alerts("/oncall", alertname="CrashFreeBudgetTicket") == []


def test_a_release_page_holds_back_the_same_releases_worse_ticket(alertmanager: Alertmanager, hooks: Hooks) -> None:
    # The two rules read one signal (alerts/rules/product.yaml): a severe release is also "worse" - one notification.
    assert RULES.rule("ReleaseWorse").rule.labels["severity"] == "ticket"
    release = {"version": "1.10.0", "baseline_version": "1.9.0"}
    send(alertmanager, alert("ReleaseRegression", "search", **release))  # the page first (see above)
    wait_for("the page at on-call", lambda: hooks.alerts("/oncall", alertname="ReleaseRegression"))
    send(
        alertmanager,
        alert("ReleaseWorse", "search", **release),  # the same release: held back
        alert("ReleaseWorse", "search", version="1.11.0", baseline_version="1.10.0"),  # another release: goes out
        alert("ReleaseWorse", "feed", **release),  # another product: goes out
    )
    wait_for("feed's ticket", lambda: hooks.alerts("/default", alertname="ReleaseWorse", product="feed"))
    wait_for("search 1.11.0's ticket", lambda: hooks.alerts("/default", alertname="ReleaseWorse", version="1.11.0"))
    wait_for(
        "search 1.10.0's ticket to be inhibited",
        lambda: alertmanager.state(alertname="ReleaseWorse", product="search", version="1.10.0") == "suppressed",
    )
    assert alertmanager.state(alertname="ReleaseWorse", product="search", version="1.11.0") == "active"
    time.sleep(3)  # several group intervals (1s): an uninhibited ticket would have been sent by now
    sent = [a["labels"]["version"] for a in hooks.alerts("/default", alertname="ReleaseWorse", product="search")]
    assert "1.11.0" in sent and "1.10.0" not in sent
