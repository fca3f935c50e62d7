"""The CLI's read commands as functions of (store, settings, string parameters) -> JSON-ready values.

Each one serves twice: called in-process by its command when the store is
free, and mounted on a running worker's read API (:mod:`pipeline.cli.api`)
when it is not. Parameters are strings because they travel in a query string.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline import catalog
from pipeline.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def metrics_query(client: Client, settings: Settings, params: Mapping[str, str]) -> dict[str, Any]:
    """``names`` (comma-separated), ``since`` (7d), ``step``, ``by`` (comma-separated), ``product``, ``version``."""
    names = [n for n in params.get("names", "").split(",") if n]
    if not names:
        raise ValueError("names: give at least one catalog metric")
    by = tuple(b for b in params.get("by", "product").split(",") if b)
    step = params.get("step")
    columns, rows = catalog.query(
        client,
        settings.clickhouse_database,
        names,
        datetime.now(UTC) - catalog.parse_since(params.get("since", "7d")),
        product=params.get("product") or None,
        version=params.get("version") or None,
        by=by,  # type: ignore[arg-type]
        step_s=int(catalog.parse_since(step).total_seconds()) if step else None,
    )
    return {"columns": columns, "rows": [list(r) for r in rows]}


READERS = {"metrics/query": metrics_query}
