"""The event contract as a JSON Schema, for producers that are not written in Python.

Generated from the pydantic models in :mod:`pipeline.events` (so it follows
the table in :mod:`pipeline.schema`), never written by hand; the committed copy
is ``docs/events.schema.json`` and a test fails when it differs from
:func:`render`. After changing the models, write it again with::

    .venv/bin/python -m pipeline.events_schema docs/events.schema.json

The document validates one event (what ``POST /v1/events`` takes per event,
and what a Kafka message on ``<prefix>.events`` holds, one per line in a
pack); ``#/$defs/Release`` validates a release announcement on
``<prefix>.releases``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipeline.events import EVENT_ADAPTER, RELEASE_ADAPTER


def event_contract_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an event, with the release announcement under ``$defs``."""
    events = EVENT_ADAPTER.json_schema(mode="validation")
    release = RELEASE_ADAPTER.json_schema(mode="validation")
    defs: dict[str, Any] = dict(events.pop("$defs"))
    defs.update(release.pop("$defs", {}))
    defs["Release"] = release
    for definition in defs.values():
        # The models default `type` to their own, but a union can only be told apart by it: on the wire it
        # is required (pydantic answers "Unable to extract tag" without it).
        props = definition.get("properties", {})
        if "type" in props and "type" not in definition.get("required", []):
            definition["required"] = ["type", *definition.get("required", [])]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ProductPulse event",
        "description": (
            "One ProductPulse event, chosen by its `type`. Timestamps are RFC 3339 with a timezone; `event_id` "
            "(a UUID, the dedup key) may be left out and is then minted by the collector or the SDK. A release "
            "announcement validates against #/$defs/Release. Generated from pipeline/events.py; do not edit."
        ),
        **events,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    """The schema as the committed file holds it: two-space indented JSON with a final newline."""
    return json.dumps(event_contract_schema(), indent=2, ensure_ascii=False) + "\n"


def write(path: Path) -> None:
    path.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/events.schema.json"))
