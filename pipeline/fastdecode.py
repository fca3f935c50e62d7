"""The worker's fast decode path: msgspec structs generated from :mod:`pipeline.schema`, and the decoders.

:func:`decode_fast` decides exactly what :func:`pipeline.events.decode_event`
decides, faster: a msgspec decoder checks the table's bounds in C and accepts only
inputs it can vouch for (canonical ids and RFC 3339 timestamps, shallow
properties); everything else - every rejection included - goes to the pydantic
models, which decide. ``tests/consumers/test_fast_decode.py`` proves it on the
hostile corpus and on generated events, ``tests/pipeline/test_schema_agreement.py``
that the structs carry the table's fields and bounds.

msgspec is a ``worker`` extra: an emit-only install never imports this module
(:mod:`pipeline.events` re-exports its names lazily).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union

from pipeline import schema
from pipeline.events import DecodeError, Event, decode_event

# msgspec Structs that mirror the models field for field, bound for bound (both follow pipeline.schema).
# They never widen what the models accept: where msgspec and pydantic could differ (ids in other spellings,
# timestamps as numbers or in other formats, lax numbers and booleans, NaN, deep nesting) the fast types are
# *stricter*, and :func:`decode_fast` falls back to pydantic, which decides. msgspec's own quirks are pinned down:
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


# Identifiers (pipeline.schema.IDENTIFIER_PATTERN, OPERATION_PATTERN) are not matched by msgspec, which would run a
# Python regex on every string of every event (+2 us an event, ~70% of the decode, measured): a batch repeats the
# same few products, versions and names, so each event's identifiers are looked up in a memory of the values
# already matched (a set per pattern, bounded) and only a new value is matched (:func:`identifiers_ok`). msgspec
# still checks their lengths; a value that does not match sends the event to pydantic, which refuses it.
CHECKED_AFTER = (schema.IDENTIFIER_PATTERN, schema.OPERATION_PATTERN)
_GOOD_MAX = 100_000  # values remembered per pattern; the memory starts afresh past it
_MATCHERS = {p: (re.compile(p).fullmatch, set[str]()) for p in CHECKED_AFTER}
IDENTIFIER_CHECKS: dict[str, tuple[tuple[str, Any, set[str]], ...]] = {
    t: tuple((n, *_MATCHERS[f.pattern]) for n, f in schema.fields_of(t).items() if f.pattern in CHECKED_AFTER)
    for t in schema.EVENT_TYPES
}  # event type -> (field, fullmatch, values already matched) per identifier it carries


def identifiers_ok(ev: Any) -> bool:
    """Whether every identifier of a decoded struct matches its pattern (values seen before are not matched again)."""
    for name, match, good in IDENTIFIER_CHECKS[ev.type]:
        value = getattr(ev, name)
        if value not in good:
            if match(value) is None:
                return False
            if len(good) >= _GOOD_MAX:
                good.clear()
            good.add(value)
    return True


def _fast_field(name: str, spec: schema.Field) -> tuple[Any, ...]:
    """``(name, type[, default])`` of one struct field: the table's bounds as msgspec constraints."""
    if spec.kind is uuid.UUID:  # any spelling msgspec reads; UNSET (not None: null is invalid) if absent
        return name, uuid.UUID | msgspec.UnsetType, msgspec.UNSET
    if spec.kind is datetime:
        return (name, str)  # checked against _RFC3339 and parsed by decode_fast
    if spec.choices:
        kind: Any = Literal.__getitem__(spec.choices)
    else:
        kind = dict[str, Any] if spec.kind is dict else spec.kind
        pattern = None if spec.pattern is None or spec.pattern in CHECKED_AFTER else rf"\A{spec.pattern}\Z"
        bounds = {"min_length": spec.min_length, "max_length": spec.max_length, "ge": spec.ge, "le": spec.le,
                  "pattern": pattern}  # fmt: skip
        constraints: dict[str, Any] = {k: v for k, v in bounds.items() if v is not None}
        if constraints:
            kind = Annotated[kind, msgspec.Meta(**constraints)]
    if spec.required:
        return name, kind
    return name, kind, spec.factory() if spec.factory is not None else spec.default


def _fast_types() -> dict[str, Any]:
    """One struct per event type, tagged by ``type``, on a base of the envelope fields."""
    config: dict[str, Any] = {"forbid_unknown_fields": True, "kw_only": True, "gc": False}
    envelope = [c.name for c in schema.COLUMNS if c.role == "envelope" and c.name != "type"]
    first = schema.fields_of(schema.EVENT_TYPES[0])
    base = msgspec.defstruct(
        "FastEnvelope", [_fast_field(n, first[n]) for n in envelope], tag_field="type", module=__name__, **config
    )
    types = {}
    for event_type in schema.EVENT_TYPES:
        own = [_fast_field(n, f) for n, f in schema.fields_of(event_type).items() if n not in envelope and n != "type"]
        name = "Fast" + "".join(word.title() for word in event_type.split("_"))
        types[event_type] = msgspec.defstruct(
            name, own, bases=(base,), tag_field="type", tag=event_type, namespace={"type": event_type},
            module=__name__, **config,
        )  # fmt: skip
    return types


if msgspec is not None:
    FAST_TYPES: dict[str, Any] = _fast_types()
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
            if not identifiers_ok(ev):
                raise ValueError("identifier")
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
                if not identifiers_ok(ev):
                    raise ValueError("identifier")
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
