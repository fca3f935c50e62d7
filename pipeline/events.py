"""Event models: the wire contract between services and the pipeline.

Events are JSON objects, one pydantic model per ``type``, joined in the
discriminated union :data:`Event`. A Kafka message holds one event, or - with
the header ``pulse.format: ndjson`` - a *pack*: newline-separated events that
all belong on that message's partition. Packs are how the emitter and the
collector send: a stream processor pays its per-message cost once per pack
instead of once per event, and each event inside is still validated, deduped
and dead-lettered on its own. :func:`decode_event` turns raw bytes into an
event or a :class:`DecodeError` and never raises, so a consumer can route bad
input to the dead-letter topic and keep going. :func:`encode_event` is the one
serialisation used by the emitter, the collector and the raw sink.

The fields, their bounds and defaults are those of the table in
:mod:`pipeline.schema`; the models are written out here and checked against it.
The worker decodes with :func:`decode_fast` (:mod:`pipeline.fastdecode`, msgspec
structs generated from the table), which accepts and rejects exactly the same
inputs with the same values, every doubtful one decided by :func:`decode_event`.
msgspec is a ``worker`` extra: this module re-exports the fast path's names
lazily, so emit-only installs never import it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import to_json as _to_json

from pipeline.schema import (
    EVENT_TYPES,
    IDENTIFIER_PATTERN,
    MAX_DURATION_MS,
    MAX_SESSION_MS,
    MAX_VALUE,
    OPERATION_PATTERN,
    UINT32_MAX,
    new_event_id,
)

if TYPE_CHECKING:  # the worker's fast decode path, re-exported lazily (see __getattr__ below)
    from pipeline.fastdecode import FAST_TYPES, decode_fast, decode_many, from_model, utc_datetime

__all__ = [
    "EVENT_ADAPTER", "EVENT_TYPES", "FAST_TYPES", "MAX_DURATION_MS", "MAX_PACK_EVENTS", "MAX_SESSION_MS", "MAX_VALUE",
    "PACK_FORMAT", "PACK_HEADER", "POSITION_ID_NAMESPACE", "RELEASE_ADAPTER", "UINT32_MAX", "Conversion",
    "DecodeError", "Error", "Event", "FeatureUsed", "Feedback", "Release", "Request", "SessionEnded",
    "SessionStarted", "SupportTicket", "decode_event", "decode_fast", "decode_many", "describe_errors",
    "encode_event", "encode_pack", "from_model", "is_pack", "new_event_id", "partition_key", "position_event_id",
    "properties_json", "split_pack", "utc_datetime",
]  # fmt: skip

# The models below are written out (the typed API mypy and readers see); pipeline.schema is the table they
# must agree with, field for field and bound for bound (tests/pipeline/test_schema_agreement.py).
Name = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(max_length=64)]
# Identifiers (product, version, environment, feature, goal, operation): the character set and why are in
# pipeline.schema. Rust's regex (pydantic's) has no trailing-newline `$` quirk, so `^...$` is the whole string.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=f"^{IDENTIFIER_PATTERN}$")]
GroupName = Annotated[str, Field(min_length=1, max_length=128, pattern=f"^{IDENTIFIER_PATTERN}$")]
Operation = Annotated[str, Field(min_length=1, max_length=128, pattern=f"^{OPERATION_PATTERN}$")]

# The namespace of ids derived from a message's position (uuid5 of "topic/partition/offset/index").
POSITION_ID_NAMESPACE = uuid.UUID("6f1d3a52-58a4-4c8e-9b1e-2d1f3c7a9e40")


def position_event_id(topic: str, partition: int, offset: int, index: int) -> uuid.UUID:
    """The id of an event that arrived without ``event_id``: the same on every replay of its message.

    Only the SDK and the collector mint random ids; an id-less event from any
    other producer is identified by where it sits in the log, so a replay
    (crash, rebalance, offset reset) stores it once.
    """
    return uuid.uuid5(POSITION_ID_NAMESPACE, f"{topic}/{partition}/{offset}/{index}")


def _utc(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: no UTC datetime holds it (a ValueError is `invalid`)
        raise ValueError("the instant is outside the range of UTC datetimes (years 1 to 9999)") from None


class _Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    event_id: uuid.UUID = Field(default_factory=new_event_id, description="dedup key")
    product: Identifier
    version: Identifier = Field(description="release of the product")
    ts: AwareDatetime = Field(description="event time; any timezone, stored as UTC")
    user_id: Name = Field(description="pseudonymous user id")
    session_id: Label = ""
    environment: Identifier = "production"
    platform: Label = ""
    properties: dict[str, Any] = Field(default_factory=dict)

    _to_utc = field_validator("ts")(_utc)


class SessionStarted(_Envelope):
    type: Literal["session_started"] = "session_started"


class SessionEnded(_Envelope):
    type: Literal["session_ended"] = "session_ended"
    status: Literal["ok", "exited", "crashed", "abnormal"]
    errors: Annotated[int, Field(ge=0, le=UINT32_MAX)] = 0  # stored as UInt32
    duration_ms: Annotated[float, Field(ge=0, le=MAX_SESSION_MS)] = 0.0


class FeatureUsed(_Envelope):
    type: Literal["feature_used"] = "feature_used"
    feature: GroupName
    success: bool = True
    duration_ms: Annotated[float, Field(ge=0, le=MAX_DURATION_MS)] = 0.0


class Request(_Envelope):
    type: Literal["request"] = "request"
    operation: Operation
    latency_ms: Annotated[float, Field(ge=0, le=MAX_DURATION_MS)]
    status_code: Annotated[int, Field(ge=0, le=599)] = 0
    error: Label = ""

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.status_code >= 500


class Error(_Envelope):
    type: Literal["error"] = "error"
    kind: Name
    handled: bool = False


class Conversion(_Envelope):
    type: Literal["conversion"] = "conversion"
    goal: GroupName
    value: Annotated[float, Field(ge=0, le=MAX_VALUE)] = 0.0
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"


class Feedback(_Envelope):
    type: Literal["feedback"] = "feedback"
    kind: Literal["nps", "csat"]
    score: Annotated[int, Field(ge=0, le=10)]

    @model_validator(mode="after")
    def _csat_is_one_to_five(self) -> Feedback:
        if self.kind == "csat" and not 1 <= self.score <= 5:
            raise ValueError("csat score must be between 1 and 5")
        return self


class SupportTicket(_Envelope):
    type: Literal["support_ticket"] = "support_ticket"
    ticket_id: Name
    action: Literal["opened", "resolved"]
    severity: Literal["low", "medium", "high", "critical"] = "medium"


Event = Annotated[
    Union[SessionStarted, SessionEnded, FeatureUsed, Request, Error, Conversion, Feedback, SupportTicket],
    Field(discriminator="type"),
]


class Release(BaseModel):
    """A release announcement, carried on the releases topic (key: product)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    type: Literal["release"] = "release"
    product: Identifier
    version: Identifier
    released_at: AwareDatetime
    channel: Label = "stable"
    rollout_pct: Annotated[float, Field(ge=0, le=100)] = 100.0
    commit: Label = ""

    _to_utc = field_validator("released_at")(_utc)


EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
RELEASE_ADAPTER: TypeAdapter[Release] = TypeAdapter(Release)


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Why a message could not become an event. ``reason`` is a short stable code."""

    reason: Literal["oversized", "bad_json", "unknown_type", "invalid", "future_ts", "past_ts", "rejected_by_store"]
    detail: str

    @property
    def stage(self) -> str:
        """Where the event was refused: ``store`` when ClickHouse refused its row, else ``decode``."""
        return "store" if self.reason == "rejected_by_store" else "decode"


def decode_event(raw: bytes | None, max_bytes: int = 64 * 1024) -> Event | DecodeError:
    """Parse and validate one message; returns a :class:`DecodeError` instead of raising."""
    if raw is None:
        return DecodeError("bad_json", "empty message")
    if len(raw) > max_bytes:
        return DecodeError("oversized", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        return EVENT_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        return _decode_error(exc)


def _decode_error(exc: ValidationError) -> DecodeError:
    first = exc.errors(include_url=False, include_input=False)[0]
    kind = first["type"]
    if kind == "union_tag_not_found":
        return DecodeError("unknown_type", "missing field 'type'")
    if kind == "union_tag_invalid":
        return DecodeError("unknown_type", first["msg"])
    if kind == "json_invalid" or not first["loc"]:
        return DecodeError("bad_json", "not a JSON object: " + first["msg"])
    return DecodeError("invalid", describe_errors(exc))


def describe_errors(exc: ValidationError, limit: int = 5) -> str:
    """One line naming each bad field: ``request.latency_ms: Input should be ...``."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def encode_event(event: BaseModel) -> bytes:
    """The canonical JSON of an event (UTC timestamps, ids as strings)."""
    return event.__pydantic_serializer__.to_json(event)


PACK_HEADER = "pulse.format"
PACK_FORMAT = b"ndjson"
MAX_PACK_EVENTS = 1 << 20  # positions inside a pack are offset * MAX_PACK_EVENTS + index


def is_pack(headers: object) -> bool:
    """Whether a message's headers (list of (key, bytes) or a mapping) mark it as a pack."""
    if not headers:
        return False
    if isinstance(headers, dict):
        return headers.get(PACK_HEADER) == PACK_FORMAT
    return any(k == PACK_HEADER and v == PACK_FORMAT for k, v in headers)  # type: ignore[attr-defined]


def encode_pack(encoded_events: list[bytes]) -> bytes:
    """Join already-encoded events into one pack value."""
    if len(encoded_events) >= MAX_PACK_EVENTS:
        raise ValueError(f"a pack holds fewer than {MAX_PACK_EVENTS} events")
    return b"\n".join(encoded_events)


def split_pack(value: bytes) -> list[bytes]:
    """The events of a pack, as their original bytes (blank lines skipped)."""
    return [line for line in value.split(b"\n") if line.strip()]


def partition_key(event: Event) -> bytes:
    """Kafka key of an event: a user's events of one product stay in order on one partition."""
    return f"{event.product}:{event.user_id}".encode()


def properties_json(properties: dict[str, Any]) -> bytes:
    """The canonical JSON of an event's properties (as :func:`encode_event` writes them: NaN and inf as null)."""
    if not properties:
        return b"{}"
    return _to_json(properties, inf_nan_mode="null")


_FAST_DECODE = {"FAST_TYPES", "decode_fast", "decode_many", "from_model", "utc_datetime"}


def __getattr__(name: str) -> Any:
    """The fast decode path's names, from :mod:`pipeline.fastdecode` on first use (it needs the worker extra)."""
    if name in _FAST_DECODE:
        from pipeline import fastdecode

        return getattr(fastdecode, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
