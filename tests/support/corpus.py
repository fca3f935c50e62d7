"""The hostile-input corpus (``tests/data/bad_inputs``): its files, its manifest, and the expected outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
MANIFEST: dict[str, Any] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())


def expand(expected: list[Any]) -> list[str]:
    """The manifest's outcome list with ``{outcome: n}`` items written out."""
    out: list[str] = []
    for item in expected:
        if isinstance(item, dict):
            ((outcome, n),) = item.items()
            out += [outcome] * n
        else:
            out.append(item)
    return out
