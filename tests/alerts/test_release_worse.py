"""A release whose crash or error rate is confidently but not severely worse: the release signal is 0.5, which
the shipped ``ReleaseWorse`` rule tickets and ``ReleaseRegression`` does not page on (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from alerts.regression import WORSE, Verdict, samples
from alerts.rules import load_rules, shipped_rules_dir

RULES = load_rules([shipped_rules_dir()])
AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def verdict(signal: str, label: str, severe: bool = False) -> Verdict:
    return Verdict("feed", "2.4.0", "2.3.1", AT, 3 * 86_400, signal, 0.021, 0.010, 3_100, 7_000, "msprt", 0.001,
                   label, severe, "2026-11-24T12:00:00+00:00/2026-12-01T12:00:00+00:00")  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(
    ("verdicts", "value", "worse"),
    [
        ([("crash_rate", "regression", False), ("latency", "no_change", False)], WORSE, ["crash_rate"]),
        (
            [("error_rate", "regression", False), ("crash_rate", "regression", False)],
            WORSE,
            ["error_rate", "crash_rate"],
        ),
        ([("crash_rate", "regression", True), ("error_rate", "regression", False)], 1.0, ["error_rate"]),
        # latency drifts by itself: its label alone is no ticket (its severe bar still pages)
        ([("latency", "regression", False), ("crash_rate", "no_change", False)], 0.0, []),
        ([("crash_rate", "improvement", False), ("error_rate", "no_change", False)], 0.0, []),
    ],
)
def test_the_release_signal_says_worse_apart_from_severe(
    verdicts: list[tuple[str, str, bool]], value: float, worse: list[str]
) -> None:
    (sample,) = samples([verdict(*v) for v in verdicts])
    assert sample.value == value and sample.evidence["worse_signals"] == worse


def test_worse_is_a_ticket_and_not_a_page() -> None:
    page, ticket = RULES.rule("ReleaseRegression").rule, RULES.rule("ReleaseWorse").rule
    assert page.signal == ticket.signal == "release_regression"
    assert ticket.labels["severity"] == "ticket" and page.labels["severity"] == "page"
    # ReleaseRegression keeps the signals' default (>= 1); the ticket starts at WORSE
    assert page.threshold is None and ticket.threshold == WORSE
