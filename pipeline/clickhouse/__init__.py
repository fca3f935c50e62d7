"""ClickHouse access: one client per process (:func:`connect`) and the schema migrations."""

from pipeline.clickhouse.client import ClickHouseLocked, connect, connect_another, opened, release
from pipeline.clickhouse.migrations import MIGRATIONS, Migration, check_versions, migrate

__all__ = [
    "MIGRATIONS",
    "ClickHouseLocked",
    "Migration",
    "check_versions",
    "connect",
    "connect_another",
    "migrate",
    "opened",
    "release",
]
