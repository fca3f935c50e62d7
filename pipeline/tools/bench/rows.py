"""Raw rows and per-minute counts as the simple contenders store them.

The naive consumer, the textbook Faust app and the quixstreams app all write
the same raw row per event into ProductPulse's ``events`` table (created by the
regular migrations), built the way a typical script does: validate with
pydantic, ``model_dump``, fill the type's missing columns, re-encode
``properties`` as JSON. The aggregating contenders also keep a count per
(key, event-time minute) in ``bench_window_counts``: a ReplacingMergeTree on
(key, minute) whose version is the count, so the newest count of a window
replaces the older ones and ``sum(count) FINAL`` is the number of events counted.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

EVENT_COLUMNS = [
    "event_id", "type", "product", "version", "ts", "user_id", "session_id", "environment", "platform",
    "properties", "status", "errors", "duration_ms", "feature", "success", "operation", "latency_ms",
    "status_code", "error", "kind", "handled", "goal", "value", "currency", "score", "ticket_id", "action",
    "severity", "kafka_partition", "kafka_offset", "pack_index",
]  # fmt: skip
_DEFAULTS = {"properties": "{}", "status": "", "errors": 0, "duration_ms": 0.0, "feature": "", "success": False,
             "operation": "", "latency_ms": 0.0, "status_code": 0, "error": "", "kind": "", "handled": False,
             "goal": "", "value": 0.0, "currency": "", "score": 0, "ticket_id": "", "action": "",
             "severity": ""}  # fmt: skip

WINDOW_COLUMNS = ["key", "minute", "count"]


def event_row(event: BaseModel, partition: int, offset: int, index: int) -> list[Any]:
    """One ``events`` row (in :data:`EVENT_COLUMNS` order) of a validated event."""
    row = {**_DEFAULTS, **event.model_dump(), "kafka_partition": partition, "kafka_offset": offset, "pack_index": index}
    row["properties"] = json.dumps(row["properties"])
    return [row[c] for c in EVENT_COLUMNS]


def create_window_table(client: Any, database: str) -> None:
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.bench_window_counts "
        "(key String, minute DateTime('UTC'), count UInt64) "
        "ENGINE = ReplacingMergeTree(count) ORDER BY (key, minute)"
    )
