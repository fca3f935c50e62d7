"""Grafana's read-only ClickHouse user (issue 17 item 4): created by a migration where the server allows it.

Embedded chDB (and the HTTP stand-in over it) has no access management: every ``CREATE USER``
is ``ACCESS_DENIED``. There the migration is skipped with one log line and left unrecorded, and
the rest of the schema is migrated. What the migration would run on a server that allows it is
checked statement by statement through a client that records and answers like one.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from pipeline import clickhouse
from pipeline.clickhouse import access
from pipeline.settings import Settings
from pipeline.usecases import schema

PASSWORD = "reader-secret-5821"
ROOT = Path(__file__).resolve().parents[3]


def recorded(client: Any) -> list[int]:
    return sorted(r[0] for r in client.query("SELECT version FROM pulse.schema_migrations FINAL").result_rows)


def test_on_chdb_the_reader_is_skipped_with_a_log_line_and_the_rest_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, clickhouse_reader_password=SecretStr(PASSWORD))
    caplog.set_level(logging.INFO, logger="pipeline.clickhouse.migrations")
    with clickhouse.opened(settings) as client:
        applied = schema.migrate(client, settings)
        others = [m.version for m in schema.MIGRATIONS if not m.access]
        assert applied == others and recorded(client) == others
        skipped = [r.getMessage() for r in caplog.records if "migration_skipped" in r.getMessage()]
        assert len(skipped) == 1 and "version=90" in skipped[0] and "code=ACCESS_DENIED" in skipped[0]
        assert PASSWORD not in caplog.text and hashlib.sha256(PASSWORD.encode()).hexdigest() not in caplog.text
        caplog.clear()
        assert schema.migrate(client, settings) == []  # tried again (unrecorded), skipped again, nothing breaks
        assert sum("migration_skipped" in r.getMessage() for r in caplog.records) == 1


def test_without_a_password_the_reader_is_skipped_naming_the_setting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="pipeline.clickhouse.migrations")
    with clickhouse.opened(settings) as client:
        schema.migrate(client, settings)
        assert 90 not in recorded(client)
    assert "reason=no_reader_password" in caplog.text and "PULSE_CLICKHOUSE_READER_PASSWORD" in caplog.text


class AccessServer:
    """A client that answers like a ClickHouse server with access management: it records every statement."""

    def __init__(self, refuse: str | None = None) -> None:
        self.commands: list[str] = []
        self.refuse = refuse
        self.recorded: list[int] = []

    def command(self, sql: str) -> None:
        if self.refuse and self.refuse in sql:
            raise RuntimeError("Code: 1000. DB::Exception: something else went wrong. (POCO_EXCEPTION)")
        self.commands.append(" ".join(sql.split()))

    def query(self, sql: str) -> Any:
        return type("Result", (), {"result_rows": []})()

    def insert(self, table: str, rows: list[list[Any]], column_names: list[str]) -> None:
        self.recorded += [r[0] for r in rows]


def test_on_a_server_the_reader_can_only_select_from_its_database() -> None:
    server = AccessServer()
    reader = access.Reader("pulse_reader", SecretStr(PASSWORD))
    assert clickhouse.migrate(server, "pulse", 400, access.MIGRATIONS, reader) == [90]  # type: ignore[arg-type]
    assert server.recorded == [90]
    access_statements = server.commands[2:]  # after CREATE DATABASE and schema_migrations
    text = "\n".join(access_statements)
    assert PASSWORD not in text  # the password travels as its SHA-256 only
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert f"CREATE USER IF NOT EXISTS pulse_reader IDENTIFIED WITH sha256_hash BY '{digest}'" in text
    grants = [s for s in access_statements if s.startswith("GRANT")]
    assert grants == ["GRANT SELECT ON pulse.* TO pulse_reader", "GRANT pulse_reader TO pulse_reader"]
    assert "REVOKE ALL ON *.* FROM pulse_reader" in access_statements  # nothing granted earlier survives
    assert any("readonly = 2 CONST" in s for s in access_statements)
    assert "ALTER USER pulse_reader DEFAULT ROLE pulse_reader" in access_statements


def test_a_real_error_in_an_access_statement_is_raised_not_skipped() -> None:
    server = AccessServer(refuse="CREATE ROLE")
    with pytest.raises(RuntimeError, match="POCO_EXCEPTION"):
        clickhouse.migrate(server, "pulse", 400, access.MIGRATIONS, access.Reader("r", SecretStr("x")))  # type: ignore[arg-type]
    assert server.recorded == []


def test_grafana_logs_in_as_the_reader() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "productpulse.yml"
    doc = yaml.safe_load(provisioning.read_text())
    (ch,) = [d for d in doc["datasources"] if d["type"] == "grafana-clickhouse-datasource"]
    assert ch["jsonData"]["username"] == Settings().clickhouse_reader_user
    assert ch["secureJsonData"]["password"] == "$PULSE_CLICKHOUSE_READER_PASSWORD"
    assert ch["jsonData"]["defaultDatabase"] == Settings().clickhouse_database
