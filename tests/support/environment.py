"""The environment a test runs in: the ``PULSE_*`` variables that name a setting, and how to clear them."""

from __future__ import annotations

import pytest

from pipeline.settings import Settings

SETTING_VARIABLES = tuple(f"PULSE_{name.upper()}" for name in Settings.model_fields)


def clear_setting_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the ``PULSE_*`` variables that name a setting; others (``PULSE_KAFKA_DATA``, the broker
    script's data folder) stay."""
    for name in SETTING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
