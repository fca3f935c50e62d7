"""The store's whole schema: every room's migrations, composed in version order.

Each room owns the DDL of its tables (the core's in
:mod:`pipeline.clickhouse.migrations`, the alerts room's in :mod:`alerts.tables`);
a store that serves the whole application - the worker, ``pulse db migrate``,
``pulse alerts run`` - is migrated with :data:`MIGRATIONS`, and a tool that only
needs the core's tables may use :data:`pipeline.clickhouse.MIGRATIONS` alone.
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from alerts import tables as alert_tables
from pipeline import clickhouse
from pipeline.clickhouse import access
from pipeline.settings import Settings

# The read-only user comes last: it grants on the tables the others create.
MIGRATIONS: tuple[clickhouse.Migration, ...] = (*clickhouse.MIGRATIONS, *alert_tables.MIGRATIONS, *access.MIGRATIONS)
clickhouse.check_versions(MIGRATIONS)  # two rooms claiming one version fail at import, not on a store


def reader(settings: Settings) -> access.Reader | None:
    """The read-only user the access migration creates, when its password is set."""
    password = settings.clickhouse_reader_password
    return None if password is None else access.Reader(settings.clickhouse_reader_user, password)


def migrate(client: Client, settings: Settings) -> list[int]:
    """Apply every room's pending migrations to the configured database; returns the versions applied now."""
    return clickhouse.migrate(
        client,
        settings.clickhouse_database,
        settings.events_ttl_days,
        MIGRATIONS,
        reader(settings),
        settings.clickhouse_cluster,
    )


def migrate_store(settings: Settings) -> list[int]:
    """``pulse db migrate``: open the configured store and apply every room's pending migrations."""
    with clickhouse.opened(settings) as client:
        return migrate(client, settings)
