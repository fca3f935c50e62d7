"""Redesign scorecards on a real chDB store with two weeks of the ``steady`` scenario: nobody is a candidate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from scenario_store import Scenario, close_scenario, fixed_end, open_scenario

from alerts.scorecard import compute_scorecards

END = fixed_end()


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    scenario = open_scenario(Path(tmp_path_factory.mktemp("steady")), scenario="steady", users_per_product=150, end=END)
    yield scenario
    close_scenario(scenario)


@pytest.mark.parametrize("days_before_end", [0, 2, 4])
def test_no_candidate_when_all_is_healthy(sc: Scenario, days_before_end: int) -> None:
    cards = compute_scorecards(sc.client, sc.database, END - timedelta(days=days_before_end))
    assert {c.product for c in cards} == set(sc.cfg.products)
    assert all(c.composite.score is not None for c in cards)
    assert [c.product for c in cards if c.redesign_candidate] == []
