"""The event schema as one table: every field of every event type, and the ``events`` column it lands in.

:data:`COLUMNS` lists the columns of the ClickHouse ``events`` table in order.
Each row says what the column is (its ClickHouse type), which event types carry
it and what each of them accepts there (:class:`Field`: Python type, bounds,
pattern or choices, default), and the value the column holds for event types
that do not carry it. Everything else that spells the schema derives from it:

* the worker's msgspec structs (:mod:`pipeline.fastdecode`), bound for bound;
* the Arrow schema of the raw rows the sink inserts (:func:`raw_arrow_schema`), the
  type-specific column map (:data:`TYPED_COLUMNS`, :data:`NUMPY_DTYPES`) and the
  envelope columns copied as they are (:data:`ENVELOPE_COLUMNS`);
* the column list of ``CREATE TABLE events`` (:func:`ddl_columns`, used by
  :mod:`pipeline.clickhouse.migrations`);
* the defaults of the emitter's typed helpers (they leave a field out, so the model fills it in).

The pydantic models in :mod:`pipeline.events` stay written out (they are the
typed public API that mypy and readers see); ``tests/pipeline/test_schema_agreement.py``
proves that they, the fast structs, the Arrow schema and the table that a
migrated store really has agree with this table field by field.

Adding a field: a row here (or a carrier on an existing row), the field on its
model, and a migration ``ALTER TABLE {db}.events ADD COLUMN IF NOT EXISTS ...``
for existing stores (it must say ``IF NOT EXISTS``: a fresh store already gets
the column from migration 1, which is built from this table).

This module imports only the standard library: the base install (pydantic and
kafka-python) imports it, and pyarrow is imported by :func:`raw_arrow_schema` alone.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import pyarrow as pa

EVENT_TYPES: tuple[str, ...] = (
    "session_started",
    "session_ended",
    "feature_used",
    "request",
    "error",
    "conversion",
    "feedback",
    "support_ticket",
)

# Bounds that keep one absurd event from breaking a column or a sum: a value past them is `invalid`.
UINT32_MAX = 2**32 - 1
MAX_DURATION_MS = 86_400_000.0  # a feature use or a request: one day
MAX_SESSION_MS = 30 * 86_400_000.0  # a session: thirty days
MAX_VALUE = 1e12  # one conversion's value


class _Required:
    """The default of a field an event must carry."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final[Any] = _Required()

# uuid4() reads os.urandom per call, which costs ~30 us on some VMs; a generator
# seeded from urandom (and reseeded in forked children) gives the same 122 random bits.
_ID_RNG = random.Random()
os.register_at_fork(after_in_child=_ID_RNG.seed)


def new_event_id() -> uuid.UUID:
    """A random (version 4) event id: what the SDK and the collector give an event sent without one."""
    return uuid.UUID(int=_ID_RNG.getrandbits(128), version=4)


@dataclass(frozen=True)
class Field:
    """What one event type accepts in one field, and what it gets when the field is left out.

    ``kind`` is the Python type of the value: ``str``, ``int``, ``float``, ``bool``,
    ``uuid.UUID``, ``datetime`` (timezone-aware, stored as UTC) or ``dict`` (free JSON).
    ``pattern`` must match the whole string (each library gets its own anchors);
    ``choices`` makes a string field a literal. A field that is not :data:`REQUIRED`
    has ``default``, or is made by ``factory`` per event.
    """

    kind: type
    default: Any = REQUIRED
    factory: Any = None  # a zero-argument callable, instead of a shared default
    min_length: int | None = None
    max_length: int | None = None
    ge: float | None = None
    le: float | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and self.factory is None


def one_of(*choices: str, default: Any = REQUIRED) -> Field:
    """A string field that holds one of ``choices``."""
    return Field(str, default=default, choices=choices)


NAME = Field(str, min_length=1, max_length=128)  # ids and names
LABEL = Field(str, default="", max_length=64)  # optional short text

# Identifiers: the strings that metrics group by, dashboards offer as variables, alerts put in labels and logs
# name - product, version, environment, feature, goal and operation. They are restricted at ingest (issue 17,
# item 3) so that no event string can break out of a SQL literal (no quote, backslash), forge a log line or a
# notification (no control character), reorder text on a screen (ASCII only: no bidi or zero-width character)
# or collide with a sentinel (a dashboard's `$__all`, the cardinality cap's `__overflow__`): they must start
# with a letter or digit. The characters after it are what real release and route names use: `1.2.3-rc.1+build.5`,
# `2024.11.02`, `v3`, `release/2024-11`, `git:9f1c2ab`, `team/app@eu`. An operation (a span or route name such as
# `GET /items/{id}`) may also hold braces, `*` and single spaces between words. Free text lives in `properties`
# (and the labels: session_id, platform, error), which nothing groups by.
_CHARS = "A-Za-z0-9._:/@+"  # and "-", last in each class below (anywhere else it would make a range)
IDENTIFIER_PATTERN = rf"[A-Za-z0-9][{_CHARS}-]*"
OPERATION_PATTERN = rf"[A-Za-z0-9][{_CHARS}{{}}*-]*(?: [{_CHARS}{{}}*-]+)*"
IDENTIFIER = Field(str, min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)  # product, version, environment
GROUP_NAME = Field(str, min_length=1, max_length=128, pattern=IDENTIFIER_PATTERN)  # feature, goal
OPERATION = Field(str, min_length=1, max_length=128, pattern=OPERATION_PATTERN)
DURATION = Field(float, default=0.0, ge=0, le=MAX_DURATION_MS)  # milliseconds


@dataclass(frozen=True)
class Column:
    """One column of ``events``: its ClickHouse type, who fills it and with what.

    ``role`` is ``envelope`` (every event type carries the field), ``typed`` (the
    event types in ``carriers`` do; the others get ``absent``, the column's value
    when a JSON row leaves it out), ``position`` (where the row came from in
    Kafka, written by the sink) or ``store`` (filled by the table's own default).
    """

    name: str
    clickhouse: str
    role: Literal["envelope", "typed", "position", "store"]
    carriers: Mapping[str, Field] = field(default_factory=dict)
    absent: Any = None


def envelope(name: str, clickhouse: str, spec: Field) -> Column:
    return Column(name, clickhouse, "envelope", dict.fromkeys(EVENT_TYPES, spec))


def typed(name: str, clickhouse: str, absent: Any, **carriers: Field) -> Column:
    unknown = set(carriers) - set(EVENT_TYPES)
    if unknown:
        raise ValueError(f"column {name}: no event type {sorted(unknown)}")
    return Column(name, clickhouse, "typed", carriers, absent)


_LOW = "LowCardinality(String)"
_UTC_MS = "DateTime64(3, 'UTC')"

COLUMNS: tuple[Column, ...] = (
    envelope("event_id", "UUID", Field(uuid.UUID, factory=new_event_id)),  # the dedup key
    envelope("type", _LOW, one_of(*EVENT_TYPES)),  # the union's tag
    envelope("product", _LOW, IDENTIFIER),
    envelope("version", _LOW, IDENTIFIER),  # the release of the product
    envelope("ts", _UTC_MS, Field(datetime)),  # event time; any timezone, stored as UTC
    envelope("user_id", "String", NAME),  # pseudonymous
    envelope("session_id", "String", LABEL),
    envelope("environment", _LOW, replace(IDENTIFIER, default="production")),
    envelope("platform", _LOW, LABEL),
    envelope("properties", "String", Field(dict, factory=dict)),  # stored as canonical JSON
    typed("status", _LOW, "", session_ended=one_of("ok", "exited", "crashed", "abnormal")),
    typed("errors", "UInt32", 0, session_ended=Field(int, default=0, ge=0, le=UINT32_MAX)),
    typed("duration_ms", "Float64", 0.0, session_ended=replace(DURATION, le=MAX_SESSION_MS), feature_used=DURATION),
    typed("feature", "String", "", feature_used=GROUP_NAME),
    typed("success", "Bool", False, feature_used=Field(bool, default=True)),
    typed("operation", "String", "", request=OPERATION),
    typed("latency_ms", "Float64", 0.0, request=Field(float, ge=0, le=MAX_DURATION_MS)),
    typed("status_code", "UInt16", 0, request=Field(int, default=0, ge=0, le=599)),
    typed("error", "String", "", request=LABEL),
    typed("kind", _LOW, "", error=NAME, feedback=one_of("nps", "csat")),
    typed("handled", "Bool", False, error=Field(bool, default=False)),
    typed("goal", "String", "", conversion=GROUP_NAME),
    typed("value", "Float64", 0.0, conversion=Field(float, default=0.0, ge=0, le=MAX_VALUE)),
    typed("currency", _LOW, "", conversion=Field(str, default="USD", pattern="[A-Z]{3}")),
    typed("score", "UInt8", 0, feedback=Field(int, ge=0, le=10)),  # csat scores are 1 to 5: a rule across fields
    typed("ticket_id", "String", "", support_ticket=NAME),
    typed("action", _LOW, "", support_ticket=one_of("opened", "resolved")),
    typed("severity", _LOW, "", support_ticket=one_of("low", "medium", "high", "critical", default="medium")),
    Column("kafka_partition", "UInt16", "position"),
    Column("kafka_offset", "UInt64", "position"),
    Column("pack_index", "UInt32", "position"),
    Column("ingested_at", _UTC_MS + " DEFAULT now64(3)", "store"),
)


def fields_of(event_type: str) -> dict[str, Field]:
    """The fields an event type carries, in column order (``type`` included)."""
    if event_type not in EVENT_TYPES:
        raise KeyError(event_type)
    return {c.name: c.carriers[event_type] for c in COLUMNS if event_type in c.carriers}


def default(event_type: str, name: str) -> Any:
    """What an event of ``event_type`` holds in field ``name`` when it was sent without it."""
    spec = fields_of(event_type)[name]
    if spec.required:
        raise LookupError(f"{event_type}.{name} is required")
    return spec.factory() if spec.factory is not None else spec.default


# --- what the worker's raw rows derive -------------------------------------------------------------
# The type-specific columns: the event types that carry each, and the column's value for every other type.
TYPED_COLUMNS: dict[str, tuple[tuple[str, ...], Any]] = {
    c.name: (tuple(c.carriers), c.absent) for c in COLUMNS if c.role == "typed"
}
# Envelope columns a raw row takes from the event as they are (event_id, type, ts and properties are converted).
ENVELOPE_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.role == "envelope" and c.name != "type" and c.carriers[EVENT_TYPES[0]].kind is str
)
_NUMBERS = {"Bool": "bool", "UInt8": "uint8", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
            "Float64": "float64"}  # fmt: skip
# numpy dtype names of the typed columns that are not strings (the others are object columns).
NUMPY_DTYPES: dict[str, str] = {
    c.name: _NUMBERS[c.clickhouse] for c in COLUMNS if c.role == "typed" and c.clickhouse in _NUMBERS
}
# The columns of `events` a batch writes (ingested_at is the table's default), in order.
RAW_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role != "store")


@cache
def raw_arrow_schema() -> pa.Schema:
    """The Arrow schema of the raw rows (:data:`RAW_COLUMNS`), as the sink inserts them (``FORMAT ArrowStream``).

    Ids and strings are Arrow strings, ``properties`` its canonical JSON bytes,
    ``ts`` milliseconds in UTC (``DateTime64(3)`` keeps no more), numbers and
    booleans their ClickHouse width.
    """
    import pyarrow as pa

    def arrow_type(column: Column) -> pa.DataType:
        if column.name == "properties":
            return pa.binary()
        if column.clickhouse == _UTC_MS:
            return pa.timestamp("ms", "UTC")
        if column.clickhouse in _NUMBERS:
            return pa.bool_() if column.clickhouse == "Bool" else getattr(pa, _NUMBERS[column.clickhouse])()
        if column.clickhouse in ("String", "UUID", _LOW):
            return pa.string()
        raise ValueError(f"no Arrow type for column {column.name} {column.clickhouse}")

    return pa.schema([(c.name, arrow_type(c)) for c in COLUMNS if c.role != "store"])


def ddl_columns() -> list[str]:
    """The column definitions of ``CREATE TABLE events``, in order: ``"event_id UUID"``, ..."""
    return [f"{c.name} {c.clickhouse}" for c in COLUMNS]
