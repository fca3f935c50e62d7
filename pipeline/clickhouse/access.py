"""The read-only ClickHouse user that Grafana's datasource logs in as, created by a migration where the server allows.

Grafana runs every panel's SQL with its datasource's credentials, and a dashboard
variable is text a viewer (or a sender, through the names it stores) controls. So the
datasource (``deploy/grafana/provisioning/datasources/productpulse.yml``) logs in as
``PULSE_CLICKHOUSE_READER_USER`` (``pulse_reader``), a user that can only read the
pulse database: its role ``<db>_reader`` holds ``SELECT ON <db>.*`` and nothing else,
and its settings profile pins ``readonly = 2`` (reads and session settings, no writes,
no DDL) and bounds a query's time.

Where it applies: a ClickHouse server whose migrating user has access management
(``access_management = 1`` or the grants ``CREATE USER``, ``CREATE ROLE``,
``CREATE SETTINGS PROFILE``, ``ROLE ADMIN``) and SQL-driven access storage. Embedded chDB
has neither (every such statement is ``ACCESS_DENIED``); nor has a server whose users
live in ``users.xml`` only. There the migration is skipped with one log line and not
recorded, so it runs again once the server allows it; the same happens while
``PULSE_CLICKHOUSE_READER_PASSWORD`` is unset (no user without a password). The password
reaches the server only as its SHA-256 (``IDENTIFIED WITH sha256_hash``), never in the
statement's text, and every statement is idempotent: a later run sets a changed password.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import SecretStr

from pipeline.clickhouse.migrations import Migration

READER_MIGRATION_VERSION = 90  # after every room's tables: composed last (pipeline.usecases.schema)
QUERY_SECONDS = 60  # the reader's max_execution_time: a dashboard query, not a report

# Errors that mean "this server does not let us manage access", not "the statement is wrong".
NOT_ALLOWED = (
    "ACCESS_DENIED",
    "NOT_IMPLEMENTED",
    "ACCESS_STORAGE_READONLY",
    "ACCESS_STORAGE_FOR_INSERTION_NOT_FOUND",
    "SUPPORT_IS_DISABLED",
)


@dataclass(frozen=True)
class Reader:
    """The read-only user: its name (a plain identifier, checked by the settings) and password."""

    user: str
    password: SecretStr

    def format_args(self) -> dict[str, str]:
        """What the migration's statements are formatted with (the password as its SHA-256 only)."""
        digest = hashlib.sha256(self.password.get_secret_value().encode()).hexdigest()
        return {"reader_user": self.user, "reader_sha256": digest}


READER_MIGRATION = Migration(
    READER_MIGRATION_VERSION,
    "read-only user for Grafana (role {db}_reader: SELECT on {db}.*; readonly profile)",
    (
        "CREATE SETTINGS PROFILE IF NOT EXISTS {db}_reader_profile "
        f"SETTINGS readonly = 2 CONST, max_execution_time = {QUERY_SECONDS}",
        "CREATE ROLE IF NOT EXISTS {db}_reader",
        "REVOKE ALL ON *.* FROM {db}_reader",
        "GRANT SELECT ON {db}.* TO {db}_reader",
        "CREATE USER IF NOT EXISTS {reader_user} IDENTIFIED WITH sha256_hash BY '{reader_sha256}' "
        "SETTINGS PROFILE '{db}_reader_profile' DEFAULT DATABASE {db}",
        "ALTER USER {reader_user} IDENTIFIED WITH sha256_hash BY '{reader_sha256}' "
        "SETTINGS PROFILE '{db}_reader_profile' DEFAULT DATABASE {db}",
        "REVOKE ALL ON *.* FROM {reader_user}",
        "GRANT {db}_reader TO {reader_user}",
        "ALTER USER {reader_user} DEFAULT ROLE {db}_reader",
    ),
    access=True,
)
MIGRATIONS: tuple[Migration, ...] = (READER_MIGRATION,)


def refusal(exc: Exception) -> str | None:
    """The error code that says the server does not allow access management here, or None (a real error)."""
    text = str(exc)
    return next((code for code in NOT_ALLOWED if code in text), None)
