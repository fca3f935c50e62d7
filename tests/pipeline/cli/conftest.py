"""Fixtures of the CLI's tests: a store for read commands to read."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import pulse


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated store that holds no events."""
    data_dir = tmp_path_factory.mktemp("empty-store")
    done = pulse(data_dir, "db", "migrate")
    assert done.returncode == 0, done.stderr
    return data_dir
