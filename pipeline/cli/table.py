"""The CLI's output formatting: query results as a rich table, a JSON array or CSV.

Every cell is escaped for where it goes (:mod:`.escape`); JSON needs nothing more than ``json.dumps``, which
writes control and non-ASCII characters as ``\\u`` escapes.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.cli.escape import csv_cell, table_cell


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, so no reader guesses the zone; a naive time is the store's, which keeps UTC."""
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return utc.isoformat(timespec="seconds").replace("+00:00", "Z")


def render(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt_name: str = "table",
    title: str | None = None,
    empty: str | None = None,
) -> None:
    """``rows`` as a table, JSON or CSV on stdout; no rows and an ``empty`` sentence: the sentence instead of a table.

    The sentence goes to stderr, so that stdout stays what the format promises (a CSV header, JSON) for scripts.
    """
    if not rows and empty:
        say_empty(empty)
        if fmt_name == "table":
            return
    if fmt_name == "json":
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt_name == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([csv_cell(c) for c in columns])
        writer.writerows([csv_cell(iso(v) if isinstance(v, datetime) else v) for v in row] for row in rows)
    else:
        table = Table(title=title)
        for c in columns:
            table.add_column(table_cell(c), justify="left" if c in ("product", "version", "t") else "right")
        for row in rows:
            table.add_row(*(table_cell(fmt(v)) for v in row))
        # No emoji codes either: a feature named ":fire:" is those six characters.
        Console(width=200, emoji=False).print(table)


def print_json(records: Sequence[Mapping[str, Any]]) -> None:
    """Records as one JSON array, as every read command prints them; NaN (no value) becomes null, valid JSON."""
    print(json.dumps([{k: _json_value(v) for k, v in r.items()} for r in records], indent=2, default=str))


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def say_empty(message: str) -> None:
    """One line on stderr for an answer with nothing in it: "no alerts pending or firing", not an empty table."""
    print(message, file=sys.stderr)


def print_json_tables(tables: Iterable[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
    """Several named tables as one stream of JSON lines, each row tagged with its table's name."""
    for name, columns, rows in tables:
        for row in rows:
            print(json.dumps({"table": name, **dict(zip(columns, row, strict=True))}, default=str))
