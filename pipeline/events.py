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

The worker decodes with :func:`decode_fast`: a msgspec decoder that checks the
same bounds in C and accepts only inputs it can vouch for (canonical ids and
RFC 3339 timestamps, shallow properties); everything else - every rejection
included - is decided by the pydantic models through :func:`decode_event`, so
both paths accept and reject exactly the same inputs with the same values
(``tests/consumers/test_fast_decode.py`` proves it on the hostile corpus and on
generated events). msgspec is a ``worker`` extra: emit-only installs never
import it.
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Union

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

Name = Annotated[str, Field(min_length=1, max_length=128)]
# Bounds that keep one absurd event from breaking a column or a sum: a value past them is `invalid`.
UINT32_MAX = 2**32 - 1
MAX_DURATION_MS = 86_400_000.0  # a feature use or a request: one day
MAX_SESSION_MS = 30 * 86_400_000.0  # a session: thirty days
MAX_VALUE = 1e12  # one conversion's value
Label = Annotated[str, Field(max_length=64)]


# uuid4() reads os.urandom per call, which costs ~30 us on some VMs; a generator
# seeded from urandom (and reseeded in forked children) gives the same 122 random bits.
_ID_RNG = random.Random()
os.register_at_fork(after_in_child=_ID_RNG.seed)


def new_event_id() -> uuid.UUID:
    return uuid.UUID(int=_ID_RNG.getrandbits(128), version=4)


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
    product: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)] = Field(description="release of the product")
    ts: AwareDatetime = Field(description="event time; any timezone, stored as UTC")
    user_id: Name = Field(description="pseudonymous user id")
    session_id: Label = ""
    environment: Label = "production"
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
    feature: Name
    success: bool = True
    duration_ms: Annotated[float, Field(ge=0, le=MAX_DURATION_MS)] = 0.0


class Request(_Envelope):
    type: Literal["request"] = "request"
    operation: Name
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
    goal: Name
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


class Release(BaseModel):
    """A release announcement, carried on the releases topic (key: product)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    type: Literal["release"] = "release"
    product: Annotated[str, Field(min_length=1, max_length=64)]
    version: Annotated[str, Field(min_length=1, max_length=64)]
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


# --- the worker's fast decode path ----------------------------------------------------------------
# msgspec Structs that mirror the models field for field, bound for bound. They never widen what the
# models accept: where msgspec and pydantic could differ (ids in other spellings, timestamps as numbers
# or in other formats, lax numbers and booleans, NaN, deep nesting) the fast types are *stricter*, and
# :func:`decode_fast` falls back to pydantic, which decides. msgspec's own quirks are pinned down:
# patterns use \A..\Z (Python's ``$`` would accept a trailing newline, pydantic's Rust regex does
# not), a repeated ``type`` key is an error (fallback), other repeated keys keep the last value (as
# jiter does), and strings are counted in code points like pydantic.

# Timestamps the fast path parses itself (as pydantic reads them: calendar, clock and offset checked, years 1 to
# 9999); any other form pydantic accepts (epoch numbers, other separators, more digits) goes to pydantic.
_RFC3339_PATTERN = (
    r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-[0-9]{2}-[0-9]{2}"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"  # fromisoformat would take offset minutes of 60 and more
)
_RFC3339 = re.compile(_RFC3339_PATTERN)
_ts_form = _RFC3339.fullmatch
_PROPERTIES_MAX_DEPTH = 64  # pydantic's JSON parser stops near 200 levels; deeper properties go to it


try:  # the worker extra; an emit-only install has no msgspec and never calls decode_fast
    import msgspec
except ImportError:  # pragma: no cover - exercised by tests/pipeline/kafka/test_base_install.py
    msgspec = None  # type: ignore[assignment]

if msgspec is not None:
    _FName = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    _FShort = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    _FLabel = Annotated[str, msgspec.Meta(max_length=64)]
    _FDuration = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]

    class FastEnvelope(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True, gc=False):
        """The fields every event carries (mirrors :class:`_Envelope`)."""

        product: _FShort
        version: _FShort
        ts: str  # checked against _RFC3339 and parsed by decode_fast
        user_id: _FName
        # msgspec reads the hyphenated and the 32-digit forms, any case; UNSET (not None: null is invalid) if absent
        event_id: uuid.UUID | msgspec.UnsetType = msgspec.UNSET
        session_id: _FLabel = ""
        environment: _FLabel = "production"
        platform: _FLabel = ""
        properties: dict[str, Any] = {}

    class FastSessionStarted(FastEnvelope, tag="session_started"):
        type: ClassVar[str] = "session_started"

    class FastSessionEnded(FastEnvelope, tag="session_ended"):
        type: ClassVar[str] = "session_ended"
        status: Literal["ok", "exited", "crashed", "abnormal"]
        errors: Annotated[int, msgspec.Meta(ge=0, le=UINT32_MAX)] = 0
        duration_ms: Annotated[float, msgspec.Meta(ge=0, le=MAX_SESSION_MS)] = 0.0

    class FastFeatureUsed(FastEnvelope, tag="feature_used"):
        type: ClassVar[str] = "feature_used"
        feature: _FName
        success: bool = True
        duration_ms: _FDuration = 0.0

    class FastRequest(FastEnvelope, tag="request"):
        type: ClassVar[str] = "request"
        operation: _FName
        latency_ms: _FDuration
        status_code: Annotated[int, msgspec.Meta(ge=0, le=599)] = 0
        error: _FLabel = ""

    class FastError(FastEnvelope, tag="error"):
        type: ClassVar[str] = "error"
        kind: _FName
        handled: bool = False

    class FastConversion(FastEnvelope, tag="conversion"):
        type: ClassVar[str] = "conversion"
        goal: _FName
        value: Annotated[float, msgspec.Meta(ge=0, le=MAX_VALUE)] = 0.0
        currency: Annotated[str, msgspec.Meta(pattern=r"\A[A-Z]{3}\Z")] = "USD"

    class FastFeedback(FastEnvelope, tag="feedback"):
        type: ClassVar[str] = "feedback"
        kind: Literal["nps", "csat"]
        score: Annotated[int, msgspec.Meta(ge=0, le=10)]

    class FastSupportTicket(FastEnvelope, tag="support_ticket"):
        type: ClassVar[str] = "support_ticket"
        ticket_id: _FName
        action: Literal["opened", "resolved"]
        severity: Literal["low", "medium", "high", "critical"] = "medium"

    FAST_TYPES: dict[str, type[FastEnvelope]] = {
        cls.type: cls
        for cls in (
            FastSessionStarted, FastSessionEnded, FastFeatureUsed, FastRequest,
            FastError, FastConversion, FastFeedback, FastSupportTicket,
        )
    }  # fmt: skip
    _FAST_DECODER = msgspec.json.Decoder(Union[tuple(FAST_TYPES.values())])  # type: ignore[valid-type]


def decode_fast(raw: bytes | None, max_bytes: int = 64 * 1024) -> tuple[Any, float, int] | DecodeError:
    """What :func:`decode_event` decides, faster: ``(struct, ts seconds, ts microseconds)`` or the same DecodeError.

    The struct (one of :data:`FAST_TYPES`) holds what the pydantic model would hold, except that
    ``ts`` is the string as sent and ``event_id`` is ``msgspec.UNSET`` when the event carried none
    (the model would mint a random one); ``ts seconds`` equals the model's ``ts.timestamp()`` and ``ts
    microseconds`` is the same instant as an integer since the epoch (:func:`utc_datetime` turns
    it back into the model's ``ts``).
    """
    if raw is not None and len(raw) <= max_bytes:
        try:
            ev = _FAST_DECODER.decode(raw)
            us = _epoch_us(ev.ts)
            if ev.properties and not _shallow(ev.properties, _PROPERTIES_MAX_DEPTH):
                raise ValueError("deep properties")
            if ev.type == "feedback" and ev.kind == "csat" and not 1 <= ev.score <= 5:
                raise ValueError("csat")
            return ev, us / 1_000_000, us
        except Exception:  # noqa: BLE001, S110 - anything the fast types refuse, pydantic decides below
            pass
    decoded = decode_event(raw, max_bytes)
    if isinstance(decoded, DecodeError):
        return decoded
    return from_model(decoded)


def decode_many(raws: Sequence[bytes | None], max_bytes: int = 64 * 1024) -> list[tuple[Any, float, int] | DecodeError]:
    """:func:`decode_fast` of every payload of a batch: the same decisions, the timestamps read in one pass.

    Timestamps of the form the fast path reads are checked and parsed by Arrow for the whole batch
    (RE2 for the form, Arrow's ISO 8601 parser for the calendar and the offset); any that do not
    parse, or fall outside years 1 to 9999 in UTC, are decided one by one as :func:`decode_fast` does.
    """
    out: list[tuple[Any, float, int] | DecodeError | None] = [None] * len(raws)
    fast: list[int] = []
    structs: list[Any] = []
    for j, raw in enumerate(raws):
        if raw is not None and len(raw) <= max_bytes:
            try:
                ev = _FAST_DECODER.decode(raw)
                if ev.properties and not _shallow(ev.properties, _PROPERTIES_MAX_DEPTH):
                    raise ValueError("deep properties")
                if ev.type == "feedback" and ev.kind == "csat" and not 1 <= ev.score <= 5:
                    raise ValueError("csat")
            except Exception:  # noqa: BLE001, S110 - decided below, by decode_fast
                pass
            else:
                fast.append(j)
                structs.append(ev)
                continue
        out[j] = decode_fast(raw, max_bytes)
    if structs:
        for j, ev, us in zip(fast, structs, _epoch_us_many([ev.ts for ev in structs]), strict=True):
            out[j] = decode_fast(raws[j], max_bytes) if us is None else (ev, us / 1_000_000, us)
    return out  # type: ignore[return-value]


def _epoch_us_many(timestamps: list[str]) -> list[int | None]:
    """:func:`_epoch_us` of each timestamp, None where it raises; vectorised with Arrow."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    result: list[int | None] = [None] * len(timestamps)
    arr = pa.array(timestamps, pa.string())
    good = np.flatnonzero(pc.match_substring_regex(arr, "^" + _RFC3339_PATTERN + "$").to_numpy(zero_copy_only=False))
    if not len(good):
        return result
    rows = good.tolist()
    try:
        parsed = arr.take(pa.array(good)).cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_pylist()
    except pa.ArrowInvalid:  # a calendar date that does not exist, somewhere in the batch: one by one
        parsed = [_epoch_us_or_none(timestamps[i]) for i in rows]
    for i, us in zip(rows, parsed, strict=True):
        if us is not None and _MIN_US <= us <= _MAX_US:
            result[i] = us
    return result


def _epoch_us_or_none(ts: str) -> int | None:
    try:
        return _epoch_us(ts)
    except ValueError:
        return None


_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _US
_MINUTES: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM" + zone -> epoch microseconds of that minute


def _epoch_us(ts: str) -> int:
    """Microseconds since the epoch of an RFC 3339 timestamp (raises on any other form, or an invalid one).

    A batch holds few distinct minutes: each is parsed once by ``datetime.fromisoformat`` (which
    checks the calendar and the offset as pydantic does), the seconds and their fraction are added.
    """
    if _ts_form(ts) is None:
        raise ValueError("not the RFC 3339 form the fast path reads")
    zone_at = len(ts) - 1 if ts[-1] == "Z" else len(ts) - 6
    key = ts[:16] + ts[zone_at:]
    base = _MINUTES.get(key)
    if base is None:
        base = (datetime.fromisoformat(ts[:16] + ":00" + ts[zone_at:]) - _EPOCH) // _US
        if len(_MINUTES) >= 100_000:
            _MINUTES.clear()
        _MINUTES[key] = base
    seconds = int(ts[17:19])
    if seconds > 59:
        raise ValueError("leap second")
    us = base + seconds * 1_000_000 + (int(ts[20:zone_at].ljust(6, "0")) if zone_at > 19 else 0)
    if not _MIN_US <= us <= _MAX_US:
        raise ValueError("outside the range of UTC datetimes")
    return us


def utc_datetime(us: int) -> datetime:
    """The UTC datetime of an instant in microseconds since the epoch (what the model's ``ts`` holds)."""
    return _EPOCH + timedelta(microseconds=us)


def from_model(event: Event) -> tuple[Any, float, int]:
    """A pydantic-validated event in the fast form (the fallback path of :func:`decode_fast`)."""
    cls = FAST_TYPES[event.type]
    fields = {k: getattr(event, k) for k in cls.__struct_fields__}
    fields["event_id"] = event.event_id if "event_id" in event.model_fields_set else msgspec.UNSET
    fields["ts"] = event.ts.isoformat()
    return cls(**fields), event.ts.timestamp(), (event.ts - _EPOCH) // _US


def _shallow(value: Any, depth: int) -> bool:
    """Whether free-form JSON nests no deeper than ``depth`` containers."""
    if depth <= 0:
        return False
    if isinstance(value, dict):
        return all(not isinstance(v, dict | list) or _shallow(v, depth - 1) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) or _shallow(v, depth - 1) for v in value)
    return True


def properties_json(properties: dict[str, Any]) -> bytes:
    """The canonical JSON of an event's properties (as :func:`encode_event` writes them: NaN and inf as null)."""
    if not properties:
        return b"{}"
    return _to_json(properties, inf_nan_mode="null")
