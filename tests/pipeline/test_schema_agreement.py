"""Every spelling of the event schema agrees with the table in :mod:`pipeline.schema`, field by field.

The pydantic models (written out), the fast decoder's msgspec structs (generated),
the Arrow schema of the raw rows, the emitter's helpers and the ``events`` table a
migrated store really has (chDB's ``system.columns``) must carry the same fields
with the same types, bounds, defaults and nullability. Each check is parametrized
by ``<event type>.<field>`` or by column, so a failure names what differs.

The consumers room writes raw rows with the table's own exports
(``consumers.rows`` imports them), checked last.
"""

from __future__ import annotations

import types
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from pydantic import AwareDatetime
from pydantic_core import PydanticUndefined

from consumers import rows
from pipeline import clickhouse, fastdecode, schema
from pipeline.events import Event, new_event_id
from pipeline.fastdecode import FAST_TYPES, decode_fast
from pipeline.kafka.emitter import Emitter
from pipeline.settings import Settings

MODELS: dict[str, Any] = {cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])}
FIELDS = [(t, name) for t in schema.EVENT_TYPES for name in schema.fields_of(t)]
FIELD_IDS = [f"{t}.{name}" for t, name in FIELDS]
TYPED = [c for c in schema.COLUMNS if c.role == "typed"]

# The ClickHouse column types a field of each Python type may land in, and the Arrow types ClickHouse reads into
# them (``properties`` is JSON text: a String written as bytes).
COLUMN_TYPES: dict[type, set[str]] = {
    str: {"String", "LowCardinality(String)"},
    int: {"UInt8", "UInt16", "UInt32", "UInt64"},
    float: {"Float64"},
    bool: {"Bool"},
    uuid.UUID: {"UUID"},
    datetime: {"DateTime64(3, 'UTC')"},
    dict: {"String"},
}
ARROW_TYPES: dict[str, set[pa.DataType]] = {
    "String": {pa.string(), pa.binary()},
    "LowCardinality(String)": {pa.string()},
    "UUID": {pa.string()},
    "Bool": {pa.bool_()},
    "UInt8": {pa.uint8()},
    "UInt16": {pa.uint16()},
    "UInt32": {pa.uint32()},
    "UInt64": {pa.uint64()},
    "Float64": {pa.float64()},
    "DateTime64(3, 'UTC')": {pa.timestamp("ms", "UTC")},
}
ZERO = {"String": "", "LowCardinality(String)": "", "Bool": False, "Float64": 0.0}  # UInt*: 0


def table_view(spec: schema.Field) -> dict[str, Any]:
    """A field of the table in the form every layer is compared in."""
    if spec.required:
        default: Any = "required"
    else:
        default = ("factory", spec.factory) if spec.factory is not None else spec.default
    return {
        "kind": spec.kind, "choices": spec.choices, "min_length": spec.min_length, "max_length": spec.max_length,
        "ge": spec.ge, "le": spec.le, "pattern": spec.pattern, "default": default, "nullable": False,
    }  # fmt: skip


def model_view(info: Any) -> dict[str, Any]:
    """A pydantic model field in the same form (``^...$`` stripped from its pattern)."""
    annotation = info.annotation
    args = get_args(annotation)
    nullable = type(None) in args
    if get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
    view: dict[str, Any] = {"kind": annotation, "choices": (), "nullable": nullable}
    if get_origin(annotation) is Literal:
        view.update(kind=str, choices=get_args(annotation))
    elif annotation is AwareDatetime:
        view["kind"] = datetime
    elif get_origin(annotation) is dict:
        view["kind"] = dict
    bounds = {"min_length": None, "max_length": None, "ge": None, "le": None, "pattern": None}
    for meta in info.metadata:
        for key in bounds:
            if getattr(meta, key, None) is not None:
                bounds[key] = getattr(meta, key)
    if bounds["pattern"] is not None:
        assert bounds["pattern"].startswith("^") and bounds["pattern"].endswith("$"), bounds["pattern"]
        bounds["pattern"] = bounds["pattern"][1:-1]
    view.update(bounds)
    if info.default_factory is not None:
        view["default"] = ("factory", info.default_factory)
    else:
        view["default"] = "required" if info.default is PydanticUndefined else info.default
    return view


def fast_view(field: msgspec.inspect.Field) -> dict[str, Any]:
    """A msgspec struct field in the same form (``\\A...\\Z`` stripped from its pattern)."""
    t = field.type
    nullable = isinstance(t, msgspec.inspect.UnionType) and any(
        isinstance(x, msgspec.inspect.NoneType) for x in t.types
    )
    kinds = {
        msgspec.inspect.StrType: str, msgspec.inspect.IntType: int, msgspec.inspect.FloatType: float,
        msgspec.inspect.BoolType: bool, msgspec.inspect.UUIDType: uuid.UUID, msgspec.inspect.DictType: dict,
        msgspec.inspect.LiteralType: str,
    }  # fmt: skip
    view: dict[str, Any] = {"kind": kinds[type(t)], "choices": tuple(getattr(t, "values", ())), "nullable": nullable}
    for key in ("min_length", "max_length", "ge", "le", "pattern"):
        view[key] = None if isinstance(t, msgspec.inspect.DictType) else getattr(t, key, None)
    if view["pattern"] is not None:
        assert view["pattern"].startswith(r"\A") and view["pattern"].endswith(r"\Z"), view["pattern"]
        view["pattern"] = view["pattern"][2:-2]
    if field.default_factory is not msgspec.NODEFAULT:
        view["default"] = ("factory", field.default_factory)
    else:
        view["default"] = "required" if field.required else field.default
    return view


# --- the pydantic models -------------------------------------------------------------------------------


def test_every_event_type_has_a_model_and_a_struct() -> None:
    assert list(MODELS) == list(schema.EVENT_TYPES)
    assert list(FAST_TYPES) == list(schema.EVENT_TYPES)


@pytest.mark.parametrize("event_type", schema.EVENT_TYPES)
def test_a_model_carries_the_fields_of_its_type(event_type: str) -> None:
    got, want = set(MODELS[event_type].model_fields), set(schema.fields_of(event_type))
    assert got == want, f"{event_type}: only in the model {sorted(got - want)}, only in the table {sorted(want - got)}"


@pytest.mark.parametrize(("event_type", "name"), FIELDS, ids=FIELD_IDS)
def test_a_model_field_is_the_tables(event_type: str, name: str) -> None:
    want = table_view(schema.fields_of(event_type)[name])
    if name == "type":  # the union's tag: each model's literal is its own type
        want.update(choices=(event_type,), default=event_type)
    got = model_view(MODELS[event_type].model_fields[name])
    assert got == want, f"{event_type}.{name}: the model has {got}, the table {want}"


# --- the fast decoder's structs ------------------------------------------------------------------------


@pytest.mark.parametrize(("event_type", "name"), FIELDS, ids=FIELD_IDS)
def test_a_struct_field_is_the_tables(event_type: str, name: str) -> None:
    struct = FAST_TYPES[event_type]
    info = msgspec.inspect.type_info(struct)
    if name == "type":  # the tag is the struct's, not a field
        assert (info.tag_field, info.tag, struct.type) == ("type", event_type, event_type)
        assert "type" not in struct.__struct_fields__
        return
    want = table_view(schema.fields_of(event_type)[name])
    want["choices"] = tuple(sorted(want["choices"]))  # msgspec reports a literal's values sorted
    if want["kind"] is datetime:  # the string as sent; decode_fast checks its RFC 3339 form and parses it
        want.update(kind=str, default="required")
    if want["kind"] is uuid.UUID:  # msgspec.UNSET when absent (the worker derives an id from the position)
        want["default"] = "required"
        assert struct.__struct_defaults__[struct.__struct_fields__.index(name)] is msgspec.UNSET
    fields = {f.name: f for f in info.fields}
    assert name in fields, f"{event_type}.{name}: not in {struct.__name__}"
    got = fast_view(fields[name])
    if want["pattern"] in fastdecode.CHECKED_AFTER:  # identifiers: matched after decoding, not by msgspec
        assert got["pattern"] is None, f"{event_type}.{name}: msgspec would match it on every event"
        checks = {n: match.__self__.pattern for n, match, _ in fastdecode.IDENTIFIER_CHECKS[event_type]}
        assert checks.get(name) == want["pattern"], f"{event_type}.{name}: not checked after decoding"
        got["pattern"] = want["pattern"]
    if name == "event_id":
        got["default"] = "required"  # inspect reports UNSET as no default; checked above
    assert got == want, f"{event_type}.{name}: {struct.__name__} has {got}, the table {want}"


@pytest.mark.parametrize("event_type", schema.EVENT_TYPES)
def test_a_struct_carries_no_field_the_table_lacks(event_type: str) -> None:
    extra = set(FAST_TYPES[event_type].__struct_fields__) - set(schema.fields_of(event_type))
    assert not extra, f"{event_type}: {sorted(extra)} in the struct only"
    info = msgspec.inspect.type_info(FAST_TYPES[event_type])
    assert info.forbid_unknown_fields, "an unknown field must send the event to pydantic, which refuses it"


@pytest.mark.parametrize("event_type", schema.EVENT_TYPES)
def test_an_event_sent_without_its_optional_fields_gets_the_tables_defaults(event_type: str) -> None:
    body: dict[str, Any] = {"type": event_type, "ts": "2026-11-25T10:00:00Z"}
    for name, spec in schema.fields_of(event_type).items():
        if spec.required and name not in body:
            body[name] = spec.choices[0] if spec.choices else {str: "x", int: 1, float: 1.0}[spec.kind]
    raw = msgspec.json.encode(body)
    struct, _, _ = decode_fast(raw)
    model = MODELS[event_type].model_validate_json(raw)
    for name, spec in schema.fields_of(event_type).items():
        if spec.required or name == "event_id":
            continue
        want = schema.default(event_type, name)
        assert getattr(struct, name) == want, f"{event_type}.{name}: the fast path gives {getattr(struct, name)!r}"
        assert getattr(model, name) == want, f"{event_type}.{name}: the model gives {getattr(model, name)!r}"
    assert struct.event_id is msgspec.UNSET and model.event_id.version == 4


# --- the emitter's helpers -----------------------------------------------------------------------------


class _Sent:
    def get(self, timeout: float | None = None) -> None:
        return None

    def succeeded(self) -> bool:
        return True

    def add_callback(self, f: Any, *args: Any) -> None:
        f(*args, None)

    def add_errback(self, f: Any, *args: Any) -> None:
        return None


class _Producer:
    """Enough of a KafkaProducer for the emitter to build and pack events; they go nowhere."""

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(self, *args: Any, **kwargs: Any) -> _Sent:
        return _Sent()

    def flush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None


@pytest.fixture
def emitter() -> Iterator[Emitter]:
    em = Emitter(Settings(), product="p", version="1", producer=_Producer())  # type: ignore[arg-type]
    yield em
    em.close()


def test_the_emitters_helpers_leave_the_defaults_to_the_table(emitter: Emitter) -> None:
    events = {
        "session_started": emitter.session_started("u", "s"),
        "session_ended": emitter.session_ended("u", "s"),
        "feature_used": emitter.feature_used("u", "search"),
        "request": emitter.request("u", "GET /", 1.0),
        "error": emitter.error("u", "Timeout"),
        "conversion": emitter.conversion("u", "checkout"),
        "feedback": emitter.feedback("u", "nps", 9),
        "support_ticket": emitter.support_ticket("u", "T-1", "opened"),
    }
    assert list(events) == list(schema.EVENT_TYPES)
    sdk_defaults = {("session_ended", "status"): "ok", ("request", "status_code"): 200}  # the SDK's own
    given = {"session_id"}
    for event_type, event in events.items():
        for name, spec in schema.fields_of(event_type).items():
            if spec.required or name in given or spec.factory is not None:
                continue
            want = sdk_defaults.get((event_type, name), spec.default)
            assert getattr(event, name) == want, f"{event_type}.{name}: the emitter gives {getattr(event, name)!r}"


# --- the Arrow schema and the consumers' column map ----------------------------------------------------


def test_the_raw_arrow_schema_has_a_column_per_written_column_in_order() -> None:
    arrow = schema.raw_arrow_schema()
    assert arrow.names == list(schema.RAW_COLUMNS)
    assert tuple(c.name for c in schema.COLUMNS if c.role != "store") == schema.RAW_COLUMNS


@pytest.mark.parametrize("column", [c for c in schema.COLUMNS if c.role != "store"], ids=lambda c: c.name)
def test_an_arrow_column_is_one_clickhouse_reads_into_its_column(column: schema.Column) -> None:
    field = schema.raw_arrow_schema().field(column.name)
    assert field.type in ARROW_TYPES[column.clickhouse], f"{column.name}: Arrow {field.type} into {column.clickhouse}"
    if column.name == "properties":
        assert field.type == pa.binary()  # the canonical JSON bytes, never re-decoded


def test_the_consumers_write_the_tables_columns() -> None:
    assert rows.RAW_SCHEMA.equals(schema.raw_arrow_schema(), check_metadata=True)
    assert tuple(rows.RAW_SCHEMA.names) == schema.RAW_COLUMNS
    assert rows.TYPED_COLUMNS is schema.TYPED_COLUMNS


@pytest.mark.parametrize("column", TYPED, ids=lambda c: c.name)
def test_a_typed_columns_numpy_dtype_holds_its_values(column: schema.Column) -> None:
    dtype = schema.NUMPY_DTYPES.get(column.name)
    if column.clickhouse in ("String", "LowCardinality(String)"):
        assert dtype is None, f"{column.name}: strings are object columns"
        return
    assert dtype is not None, column.name
    assert np.dtype(dtype) == schema.raw_arrow_schema().field(column.name).type.to_pandas_dtype(), column.name
    assert np.array([column.absent], dtype)[0] == column.absent, column.name


# --- the table itself, against a migrated store --------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("schema"))
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, "pulse")  # the core's tables: events is one of them
    yield client
    client.close()
    clickhouse.release(settings)


def test_the_events_table_has_the_tables_columns_in_order(store: Client) -> None:
    rows = store.query(
        "SELECT name, type, default_kind, default_expression FROM system.columns "
        "WHERE database = 'pulse' AND table = 'events' ORDER BY position"
    ).result_rows
    got = [(name, kind + (f" {dk} {expr}" if dk else "")) for name, kind, dk, expr in rows]
    want = [(c.name, c.clickhouse) for c in schema.COLUMNS]
    for (got_name, got_type), (want_name, want_type) in zip(got, want, strict=False):
        assert got_name == want_name, f"column {want_name}: the store has {got_name} in its place"
        assert got_type == want_type, f"column {want_name}: the store has {got_type}, the table {want_type}"
        assert not got_type.startswith("Nullable"), f"column {want_name} is nullable"
    assert [n for n, _ in got] == [n for n, _ in want]


def test_describe_agrees_with_system_columns(store: Client) -> None:
    described = [(r[0], r[1]) for r in store.query("DESCRIBE TABLE pulse.events").result_rows]
    assert described == [(c.name, c.clickhouse.split(" DEFAULT ")[0]) for c in schema.COLUMNS]


@pytest.mark.parametrize(("event_type", "name"), FIELDS, ids=FIELD_IDS)
def test_a_fields_values_fit_its_column(event_type: str, name: str) -> None:
    column = next(c for c in schema.COLUMNS if c.name == name)
    spec = schema.fields_of(event_type)[name]
    assert column.clickhouse in COLUMN_TYPES[spec.kind], f"{event_type}.{name}: a {spec.kind} in {column.clickhouse}"
    if column.clickhouse.startswith("UInt"):
        top = 2 ** int(column.clickhouse[4:]) - 1
        assert spec.ge is not None and spec.ge >= 0, f"{event_type}.{name}: negative values in {column.clickhouse}"
        assert spec.le is not None and spec.le <= top, f"{event_type}.{name}: values past {top}"
    if not spec.required and spec.factory is None:
        assert isinstance(spec.default, spec.kind), f"{event_type}.{name}: a default of another type"


def test_a_row_without_the_typed_fields_holds_their_absent_values(store: Client) -> None:
    """What a typed column holds for an event type that does not carry it is the store's own default."""
    names = [c.name for c in TYPED]
    store.command(
        "INSERT INTO pulse.events (event_id, type, product, version, ts, user_id) "
        f"VALUES ('{new_event_id()}', 'session_started', 'p', '1', '{datetime.now(UTC):%Y-%m-%d %H:%M:%S}', 'u')"
    )
    row = store.query(f"SELECT {', '.join(names)} FROM pulse.events WHERE type = 'session_started'").result_rows[0]
    for column, value in zip(TYPED, row, strict=True):
        assert value == column.absent and type(value) is type(column.absent), (
            f"column {column.name}: the store fills in {value!r}, the table says {column.absent!r}"
        )
        assert column.absent == ZERO.get(column.clickhouse, 0), column.name
