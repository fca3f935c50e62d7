"""What a standard's route makes of one request before the shared ingest path validates and produces it.

Each mapping module (:mod:`.otlp`, :mod:`.sentry`, :mod:`.segment`, :mod:`.posthog`) turns a
decoded body into an :class:`Intake`: candidate events as plain dicts (the
shapes of :mod:`pipeline.events`, validated later by the very models
``POST /v1/events`` uses), a label per event naming the source item it came
from, and what it set aside. Nothing is set aside silently: every span,
message or item that maps to no event is counted by kind
(``pulse_collector_unmapped_total``) and, where the standard has a way to say
so (OTLP's partial success), reported to the client.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline import telemetry


@dataclass(slots=True)
class Intake:
    """Candidate events of one request, with their source labels and the items that mapped to nothing."""

    source: str
    items: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # items the client should hear were not stored (OTLP rejected_spans)
    refused_why: Counter[str] = field(default_factory=Counter)

    def add(self, event: dict[str, Any], label: str) -> None:
        self.items.append(event)
        self.labels.append(label)

    def set_aside(self, kind: str, why: str | None = None) -> None:
        """Count an item that maps to no event; with ``why`` it is also refused to the client."""
        self.unmapped[kind] += 1
        if why is not None:
            self.refused += 1
            self.refused_why[why] += 1

    def count_unmapped(self) -> None:
        """Add this request's unmapped items to the Prometheus counter (once its events were acknowledged)."""
        for kind, n in self.unmapped.items():
            telemetry.COLLECTOR_UNMAPPED.labels(self.source, kind).inc(n)


def stable_event_id(namespace: uuid.UUID, source_id: Any) -> str | None:
    """The event id of an item whose SDK gave it an id: the id itself when it is a UUID, else uuid5 of it.

    A retried batch carries the same ids, so the worker's ``event_id`` dedup
    counts it once. None when the SDK sent no id (the model then mints a
    random one, as for ``POST /v1/events``).
    """
    if source_id is None or source_id == "":
        return None
    text = str(source_id)
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return str(uuid.uuid5(namespace, text))


def text(value: Any, limit: int = 64) -> str:
    """A short text field from a source value: strings as they are, numbers spelled out, cut to ``limit``."""
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:limit]


# The identifier charset of the event contract (issue 17): what metrics group by - product, version,
# environment, feature, goal, operation - is ASCII [A-Za-z0-9._:/@+-] starting with a letter or digit, and an
# operation may also hold { } * and single spaces. The standards' names are free text ("Order Completed",
# "$pageview", "2.3.0 (145)"): they are normalised to that charset, and the original kept in properties.
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9._:/@+-]+")
_NOT_OPERATION = re.compile(r"[^A-Za-z0-9._:/@+{}* -]+")
_LEADING = re.compile(r"^[^A-Za-z0-9]+")


def identifier(value: Any, limit: int = 64) -> str:
    """``value`` in the identifier charset: each run of other characters becomes ``_``, leading ones are dropped.

    ``Order Completed`` -> ``Order_Completed``, ``$autocapture`` -> ``autocapture``,
    ``2.3.0 (145)`` -> ``2.3.0_145_``; ``""`` when nothing is left (the model then names the field).
    """
    return _LEADING.sub("", _NOT_IDENTIFIER.sub("_", text(value, 1024)))[:limit]


def operation_name(value: Any, limit: int = 128) -> str:
    """An operation (``GET /items/{id}``) in its charset: runs of whitespace become one space, others ``_``."""
    spaced = " ".join(text(value, 1024).split())
    return _LEADING.sub("", _NOT_OPERATION.sub("_", spaced))[:limit].rstrip()


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a source's optional sub-objects)."""
    return value if isinstance(value, dict) else {}


def dig(doc: Any, *path: str) -> Any:
    """``doc[path[0]][path[1]]...``, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
