"""Release verdicts on a real chDB store with two weeks of the ``steady`` scenario: no release pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from support.scenario_store import Scenario, SharedStores, close_scenario, fixed_end

from alerts.regression import regression_samples, release_verdicts
from pipeline.tools import synth

END = fixed_end()


@pytest.fixture(scope="module")
def sc(shared_stores: SharedStores) -> Iterator[Scenario]:
    scenario = shared_stores.scenario(scenario="steady", users_per_product=150, end=END)
    yield scenario
    close_scenario(scenario)


def test_no_severe_regression_for_any_release(sc: Scenario) -> None:
    inside = [r for r in synth.releases(sc.cfg) if sc.cfg.start < r.released_at < END]
    assert inside, "the steady scenario ships releases inside the span"
    judged = set()
    for release in inside:
        for bake in (timedelta(hours=12), timedelta(days=3)):
            now = min(release.released_at + bake, END)
            verdicts = release_verdicts(sc.client, sc.database, now)
            assert not [v.to_json() for v in verdicts if v.severe]
            judged |= {(v.product, v.version) for v in verdicts if v.verdict != "insufficient_data"}
    assert {(r.product, r.version) for r in inside} <= judged  # every release really was compared
    assert all(s.value == 0.0 for s in regression_samples(sc.client, sc.database, END))
