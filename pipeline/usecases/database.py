"""``pulse db migrate``: open the store and apply the versioned, idempotent migrations."""

from __future__ import annotations

from pipeline import clickhouse
from pipeline.settings import Settings


def migrate(settings: Settings) -> list[int]:
    """Apply the migrations the store has not recorded yet; returns the versions applied now (none: up to date)."""
    with clickhouse.opened(settings) as client:
        return clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days)
