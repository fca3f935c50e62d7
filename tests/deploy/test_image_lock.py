"""The image installs exactly deploy/container/requirements.lock: every dependency the worker extra names must
be pinned there (a route added to the collector with a new library once shipped an image whose collector could
not import it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_every_runtime_dependency_is_pinned_in_the_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["worker"]}
    pinned = {
        _name(line) for line in (ROOT / "deploy" / "container" / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    }  # fmt: skip
    assert wanted - pinned == set(), "regenerate deploy/container/requirements.lock (see its header)"
