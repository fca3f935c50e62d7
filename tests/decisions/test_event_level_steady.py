"""Healthy products on four weeks of event-level ``steady`` traffic at 60 users a day: neither flagged nor paged.

The quiet half of ``test_event_level_decisions.py`` (which says why these data), in a module of its own: chDB opens
one store per process at a time, and that module's store stays open until its module ends.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.event_level import DAYS, end_at, pages_over_span
from support.scenario_store import close_scenario, open_scenario

from alerts.scorecard import compute_scorecards


@pytest.mark.parametrize("hour", [3, 21])
def test_healthy_products_at_60_users_a_day_are_neither_flagged_nor_paged(
    hour: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    end = end_at(hour)
    sc = open_scenario(
        tmp_path_factory.mktemp("event-level-steady"), scenario="steady", days=DAYS, users_per_product=60, end=end,
        seed=2,
    )  # fmt: skip
    try:
        for days_back in (0, 3, 6):
            cards = compute_scorecards(sc.client, sc.database, end - timedelta(days=days_back))
            assert len(cards) == len(sc.cfg.products)
            assert [c.product for c in cards if c.redesign_candidate] == []
        pages, judged = pages_over_span(sc, end)
        assert pages == {}
        assert len(judged) >= 3, judged  # the A/A releases inside the span, judged and quiet
    finally:
        close_scenario(sc)
