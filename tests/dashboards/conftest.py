"""Fixtures for the dashboard tests: one filled scenario store per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dashboard_store import open_store
from support.scenario_store import Scenario, SharedStores, close_scenario


@pytest.fixture(scope="module")
def store(shared_stores: SharedStores) -> Iterator[Scenario]:
    """The dashboards' store, filled once per session and opened per module (chDB: one open folder at a time)."""
    sc = shared_stores.open("dashboards", open_store)
    yield sc
    close_scenario(sc)
