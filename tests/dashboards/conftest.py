"""Fixtures for the dashboard tests: one filled scenario store per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_store import open_store
from scenario_store import Scenario, close_scenario


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """One filled store per test module (chDB: one open folder per process at a time)."""
    sc = open_store(Path(tmp_path_factory.mktemp("store")))
    yield sc
    close_scenario(sc)
