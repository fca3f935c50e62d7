"""Where demo and bench may write their synthetic rows: never into a user's real database by accident.

On the embedded default they use folders of their own. With a ClickHouse
server (``PULSE_CLICKHOUSE_DSN``) they need a database they may fill, named by
the user with ``--scratch-database``; without one they refuse to start.
"""

from __future__ import annotations

from pipeline.errors import UsageError
from pipeline.settings import Settings


def scratch_settings(settings: Settings, scratch_database: str | None, command: str) -> Settings:
    """``settings`` pointed at a database ``command`` may fill with synthetic data."""
    if scratch_database is not None:
        return Settings.model_validate({**settings.model_dump(), "clickhouse_database": scratch_database})
    if settings.embedded_clickhouse:
        return settings
    raise UsageError(
        f"{command} writes synthetic events into ClickHouse, and PULSE_CLICKHOUSE_DSN points at a server: "
        "pass --scratch-database NAME (a database it may create and fill, holding nothing of yours), "
        "or unset PULSE_CLICKHOUSE_DSN to use the embedded store"
    )
