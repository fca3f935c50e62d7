"""Tests run on the defaults, not on the developer's shell: the root conftest clears ``PULSE_*`` settings."""

from __future__ import annotations

import os

import pytest
from support.environment import SETTING_VARIABLES, clear_setting_variables

from pipeline.settings import Settings


def test_clearing_removes_every_setting_variable_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", "http://u:p@clickhouse.example:8123/prod")
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", "prod")
    monkeypatch.setenv("PULSE_KAFKA_DATA", "/var/lib/kafka")  # the broker script's, not a setting
    assert Settings().clickhouse_dsn is not None
    clear_setting_variables(monkeypatch)
    assert Settings().clickhouse_dsn is None and Settings().topic_prefix == "pulse"
    assert os.environ["PULSE_KAFKA_DATA"] == "/var/lib/kafka"
    assert "PULSE_CLICKHOUSE_DSN" in SETTING_VARIABLES and "PULSE_WEB_HOST" in SETTING_VARIABLES


def test_a_test_sees_no_setting_variable() -> None:
    assert [name for name in SETTING_VARIABLES if name in os.environ] == []
