"""A read command against a store that holds nothing yet: one plain sentence and what to run, not a DB error.

Opening embedded chDB creates its folder, so a ``pulse scorecard`` with a
mistyped ``--data-dir`` used to leave an empty store behind and then fail
with ``Code: 81 ... Database pulse does not exist``. :func:`read` checks
that the folder exists before anything opens it, and turns the engine's
"no such database/table" (a folder or server the migrations never ran on)
into :class:`NoData` with the commands that fill a store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import PulseError
from pipeline.settings import Settings

# ClickHouse error codes meaning "nothing was ever stored here": UNKNOWN_TABLE, UNKNOWN_DATABASE.
_NEVER_MIGRATED = {60, 81}


def how_to_get_data(settings: Settings) -> str:
    """The commands that fill a store, for the message; the demo keeps its own store under the data folder."""
    return (
        "run `pulse worker` and send it events (the SDK, `pulse collector`, `pulse load`), "
        f"or run `pulse demo --data-dir {settings.data_dir}` and read its store with --data-dir "
        f"{settings.data_dir / 'demo'}"
    )


class NoData(PulseError):
    """The store a read command was pointed at does not exist, or was never written to."""


def read(settings: Settings, name: str, params: Mapping[str, str]) -> Any:
    """What :func:`pipeline.usecases.api.read` answers, or :class:`NoData` when there is no store to read."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    from pipeline.usecases import api

    if settings.embedded_clickhouse:
        folder = Path(settings.clickhouse_url.removeprefix("chdb://"))
        if not folder.is_dir():
            raise NoData(f"no data yet: there is no store at {folder}; {how_to_get_data(settings)}")
    try:
        return api.read(settings, name, params)
    except DatabaseError as exc:
        if _code(exc) not in _NEVER_MIGRATED:
            raise
        where = settings.clickhouse_url.removeprefix("chdb://") if settings.embedded_clickhouse else "the server"
        raise NoData(
            f"no data yet: database {settings.clickhouse_database!r} in {where} holds no ProductPulse tables; "
            f"{how_to_get_data(settings)}"
        ) from None


def _code(exc: Exception) -> int | None:
    """The ClickHouse error code of ``exc`` (clickhouse-connect sets it; older versions only say it in the text)."""
    code = getattr(exc, "code", None)
    if code is None and (match := re.search(r"\bCode:\s*(\d+)", str(exc))):
        code = int(match.group(1))
    return code
