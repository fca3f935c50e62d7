"""Redesign scorecards on a real chDB store with two weeks of the ``steady`` scenario: nobody is a candidate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from support.scenario_store import Scenario, SharedStores, close_scenario, fixed_end

from alerts.scorecard import compute_scorecards

END = fixed_end()


@pytest.fixture(scope="module")
def sc(shared_stores: SharedStores) -> Iterator[Scenario]:
    scenario = shared_stores.scenario(scenario="steady", users_per_product=150, end=END)
    yield scenario
    close_scenario(scenario)


@pytest.mark.parametrize("days_before_end", [0, 2, 4])
def test_no_candidate_when_all_is_healthy(sc: Scenario, days_before_end: int) -> None:
    cards = compute_scorecards(sc.client, sc.database, END - timedelta(days=days_before_end))
    assert {c.product for c in cards} == set(sc.cfg.products)
    assert all(c.composite.score is not None for c in cards)
    assert [c.product for c in cards if c.redesign_candidate] == []
