"""The health job (alerts/health.py) on a real chDB store: verdicts and scorecards stored whatever rules exist,
and the live signals read them back as the samples they would have computed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from support.scenario_store import Scenario, SharedStores, close_scenario, fixed_end

from alerts.health import HealthJob, stored_redesign_samples, stored_release_samples
from alerts.regression import regression_samples
from alerts.scorecard import redesign_samples
from alerts.sources import default_signals

END = fixed_end()


@pytest.fixture(scope="module")
def sc(shared_stores: SharedStores) -> Iterator[Scenario]:
    scenario = shared_stores.scenario(scenario="regression_and_decay", users_per_product=150, end=END)
    yield scenario
    close_scenario(scenario)


def _at(sc: Scenario) -> datetime:
    return datetime.fromisoformat(sc.story["regression_released_at"]) + timedelta(days=2, minutes=7)


def _key(samples: list) -> dict:  # type: ignore[type-arg]
    return {tuple(sorted(s.labels.items())): (s.value, s.volume) for s in samples}


def test_the_job_stores_verdicts_and_scorecards_and_the_signals_read_them(sc: Scenario) -> None:
    at = _at(sc)
    counts = HealthJob(sc.database).run(sc.client, at)
    assert counts["verdicts"] > 0 and counts["scorecards"] == len(sc.cfg.products)
    stored = stored_release_samples(sc.client, sc.database, at + timedelta(minutes=1), timedelta(minutes=10))
    assert stored is not None
    assert _key(stored) == _key(regression_samples(sc.client, sc.database, at))
    assert any(s.value == 1.0 and s.evidence["sentences"] for s in stored)  # the bad release, in words
    cards = stored_redesign_samples(sc.client, sc.database, at + timedelta(minutes=1), timedelta(minutes=10))
    assert cards is not None
    assert _key(cards) == _key(redesign_samples(sc.client, sc.database, at))


def test_stale_or_missing_results_are_computed(sc: Scenario) -> None:
    at = _at(sc) + timedelta(hours=5)
    assert stored_release_samples(sc.client, sc.database, at, timedelta(minutes=10)) is None
    live = default_signals(timedelta(minutes=10))["release_regression"]
    computed = live(sc.client, sc.database, at, store=True)  # nothing fresh stored: computes and stores
    assert _key(computed) == _key(regression_samples(sc.client, sc.database, at))
    again = stored_release_samples(sc.client, sc.database, at + timedelta(minutes=1), timedelta(minutes=10))
    assert again is not None and _key(again) == _key(computed)
