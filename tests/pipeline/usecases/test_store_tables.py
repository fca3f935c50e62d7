"""Each room owns the DDL of its tables; every table a dashboard or a catalog metric reads is created by one.

The store couples the rooms where the import graph cannot see it: a dashboard
reads the alerts room's tables by name. These tests make that coupling explicit.
Each table's owner is the room whose migrations create it; every table named in
the SQL of a dashboard (panels, variables, annotations, and the modules that
build them) or of the metric catalog must have one, and the composed migrations
(:mod:`pipeline.usecases.schema`) must create exactly those tables on a real store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from alerts import tables as alert_tables
from dashboards.registry import all_dashboards
from pipeline import clickhouse
from pipeline.catalog.metrics import CATALOG, SOURCES
from pipeline.clickhouse import access
from pipeline.settings import Settings
from pipeline.usecases import schema

ROOT = Path(__file__).resolve().parents[3]
PROBE_DB = "store_probe"  # a database name no SQL spells by accident
CREATES = re.compile(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS \{db\}\.(\w+)")
ROOM_MIGRATIONS = {"core": clickhouse.MIGRATIONS, "alerts": alert_tables.MIGRATIONS}
# Tables a room reads that another room owns: the store's coupling between rooms, spelled out.
CROSS_ROOM_READS = {
    "dashboards": {"alerts": {"alert_events", "product_scorecards", "release_verdicts"}},
}


def owners() -> dict[str, str]:
    """Table -> the room whose migrations create it (a table created by two rooms fails here)."""
    found: dict[str, str] = {}
    for room, migrations in ROOM_MIGRATIONS.items():
        for migration in migrations:
            for statement in migration.statements:
                for table in CREATES.findall(statement):
                    assert found.setdefault(table, room) == room, f"{table} is created by {found[table]} and {room}"
    return found


def dashboard_reads() -> set[str]:
    """Every table the dashboards' SQL names, as built and as written in their modules."""
    texts = []
    for dashboard in all_dashboards(PROBE_DB):
        if dashboard.datasource != "clickhouse":
            continue
        queries = [q for p in dashboard.panels for q in p.queries]
        queries += [v.query for v in dashboard.variables] + [a.query for a in dashboard.annotations]
        texts += [q.text for q in queries]
    built = {t for text in texts for t in re.findall(rf"\b{PROBE_DB}\.(\w+)", text)}
    sources = (ROOT / "dashboards").glob("*.py")
    written = {t for p in sources for t in re.findall(r"\{(?:db|database)\}\.(\w+)", p.read_text())}
    return built | written


def catalog_reads() -> set[str]:
    """Every table the metric catalog's sources and modules name."""
    assert {m.source for m in CATALOG.values()} <= set(SOURCES)
    from_sources = {t for s in SOURCES.values() for t in re.findall(r"\{db\}\.(\w+)", s.sql)}
    written = {
        t for p in (ROOT / "pipeline" / "catalog").glob("*.py") for t in re.findall(r"\{db\}\.(\w+)", p.read_text())
    }
    return from_sources | written


def test_the_composed_migrations_are_every_rooms_in_version_order() -> None:
    assert (*clickhouse.MIGRATIONS, *alert_tables.MIGRATIONS, *access.MIGRATIONS) == schema.MIGRATIONS
    versions = [m.version for m in schema.MIGRATIONS]
    assert versions == sorted(set(versions)) == [1, 2, 3, 90]  # the read-only user last: it grants on the rest
    assert [m.version for m in alert_tables.MIGRATIONS] == [3]  # the version the alert tables always had


def test_migrate_refuses_versions_out_of_order() -> None:
    with pytest.raises(ValueError, match="unique and ascending"):
        clickhouse.check_versions((*alert_tables.MIGRATIONS, *clickhouse.MIGRATIONS))
    with pytest.raises(ValueError, match="unique and ascending"):
        clickhouse.check_versions((*clickhouse.MIGRATIONS, clickhouse.MIGRATIONS[-1]))


def test_every_table_the_dashboards_and_the_catalog_read_has_an_owner() -> None:
    owned = owners()
    dashboards, catalog = dashboard_reads(), catalog_reads()
    assert dashboards and catalog
    assert dashboards - set(owned) == set(), "dashboards read tables no room creates"
    assert catalog - set(owned) == set(), "the catalog reads tables no room creates"
    assert {owned[t] for t in catalog} == {"core"}, "the core's catalog reads only the core's tables"
    cross = {room: tables for room in ROOM_MIGRATIONS if (tables := {t for t in dashboards if owned[t] == room})}
    cross.pop("core", None)
    assert cross == CROSS_ROOM_READS["dashboards"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Settings]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("store"))
    client = clickhouse.connect(settings)
    yield client, settings
    client.close()
    clickhouse.release(settings)


def test_a_store_migrated_with_the_core_gets_the_other_rooms_tables_later(store: tuple[Client, Settings]) -> None:
    client, settings = store
    assert clickhouse.migrate(client, settings.clickhouse_database) == [1, 2]
    assert schema.migrate(client, settings) == [3]
    assert schema.migrate(client, settings) == []
    created = {r[0] for r in client.query(f"SHOW TABLES FROM {settings.clickhouse_database}").result_rows}
    assert created == set(owners()) | {"schema_migrations"}
    assert dashboard_reads() | catalog_reads() <= created
