"""The decoder against hostile input: the corpus in tests/data/bad_inputs/ and hypothesis-made messages.

* every corpus file goes through both stages of a batch (:func:`consumers.decode.decode_batch`, then
  :func:`consumers.aggregate.aggregate_decoded`) with the outcome its manifest names for each event
  (dead-letter reason, ``stored`` or ``duplicate``), and its rows and dead letters are accepted by a
  real (embedded) ClickHouse and read back unchanged;
* any bytes give an event or a :class:`DecodeError`, never an exception - alone, as a pack, and
  through the whole batch step;
* JSON objects built from the schema and then mutated (unicode, extremes, missing, extra and
  wrongly typed fields) never make the decoder raise;
* every event the decoder accepts becomes a raw row and partials that ClickHouse accepts, and the
  stored row holds exactly the event's values (no silent wrap-around, truncation or reformatting);
* the worker's fast decode path (:func:`pipeline.events.decode_fast`, msgspec) decides exactly what
  the pydantic models decide on any bytes and any mutated event: the same dead-letter reason and
  detail, or an event with the same canonical JSON at the same instant (edge cases field by field
  and the corpus: ``tests/consumers/test_fast_decode.py``).
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from support.batch_views import aggregate_batch, json_rows, partials
from support.corpus import CORPUS, MANIFEST, expand

from consumers.aggregate import BatchResult
from consumers.dedup import SeenIds, Watermarks
from consumers.records import Message, unpack
from consumers.sink import ClickHouseSink
from pipeline import clickhouse
from pipeline.events import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    DecodeError,
    Event,
    decode_event,
    decode_fast,
    decode_many,
    encode_event,
    utc_datetime,
)
from pipeline.settings import Settings

CORPUS_SETTINGS: dict[str, Any] = MANIFEST["settings"]
CORPUS_MAX_AGE_S = CORPUS_SETTINGS["events_ttl_days"] * 86_400.0
REASONS = {"oversized", "bad_json", "unknown_type", "invalid", "future_ts", "past_ts", "rejected_by_store"}
OUTCOMES = REASONS | {"stored", "duplicate"}
PACK_HEADERS = [("pulse.format", b"ndjson")]
MAX_AGE_S = 400 * 86_400
EVENT_TYPE_CLASSES: tuple[type, ...] = get_args(get_args(Event)[0])
CORPUS_PARTITION = 1009  # the hypothesis tests write partitions 0-999
_positions = itertools.count(1)  # every batch written to the store gets offsets of its own

# Hypothesis keeps its caches outside the work tree, and no example database: every run draws afresh.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "productpulse-hypothesis"))
BOUNDED = settings(deadline=None, database=None)


def outcomes(batch: BatchResult, payloads: int) -> dict[int, tuple[str, str]]:
    """Index in the message -> (outcome, dead-letter detail) of every event of a one-message batch."""
    got: dict[int, tuple[str, str]] = {}
    for d in batch.dead:
        assert d.index not in got, f"two dead letters for index {d.index}"
        got[d.index] = (d.error.reason, d.error.detail)
    for row in json_rows(batch.raw_rows):
        index = json.loads(row)["pack_index"]
        assert index not in got, f"index {index} both stored and dead-lettered"
        got[index] = ("stored", "")
    missing = [i for i in range(payloads) if i not in got]
    assert len(missing) == batch.duplicates, "every event is stored, dead-lettered or a counted duplicate"
    for i in missing:
        got[i] = ("duplicate", "")
    return got


def run_batch(messages: list[Message], *, max_age_s: float = MAX_AGE_S) -> BatchResult:
    return aggregate_batch(
        messages,
        SeenIds(100_000),
        Watermarks(300),
        now_s=time.time(),
        max_event_bytes=64 * 1024,
        max_future_skew_s=3600,
        max_age_s=max_age_s,
    )


# --- a real ClickHouse engine (embedded chDB), one per module --------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseSink]:
    s = Settings(data_dir=tmp_path_factory.mktemp("decode-properties"))
    client = clickhouse.connect(s)
    clickhouse.migrate(client, "pulse")
    sink = ClickHouseSink(client, "pulse")
    yield sink
    sink.close()
    clickhouse.release(s)


def write(store: ClickHouseSink, batch: BatchResult) -> None:
    """Write a batch the way the worker does (consumers/ingest.py steps 3-5)."""
    store.write_raw(batch.raw_rows)
    store.write_errors(batch, "pulse.events")
    store.write_partials(batch)


def assert_stored_exactly(store: ClickHouseSink, batch: BatchResult, events: dict[tuple[int, int, int], Event]) -> None:
    """Every raw row of ``batch`` is in ``events`` with the event's exact values, and the partials count it."""
    if not batch.raw_rows:
        return
    rows = map(json.loads, json_rows(batch.raw_rows))
    positions = {(r["kafka_partition"], r["kafka_offset"], r["pack_index"]) for r in rows}
    partitions = sorted({p for p, _, _ in positions})
    offsets = sorted({o for _, o, _ in positions})
    result = store.client.query(
        "SELECT * FROM pulse.events WHERE kafka_partition IN {ps:Array(UInt16)} AND kafka_offset IN {os:Array(UInt64)}",
        parameters={"ps": partitions, "os": offsets},
    )
    rows = {(r["kafka_partition"], r["kafka_offset"], r["pack_index"]): r for r in result.named_results()}
    assert set(rows) == positions, "one row per stored event, at its position"
    for position, row in rows.items():
        event = events[position]
        want = json.loads(encode_event(event))
        if "event_id" not in event.model_fields_set:
            want.pop("event_id")  # derived from the position by decode_batch
        else:
            assert str(row["event_id"]) == want.pop("event_id")
        ts = event.ts.replace(microsecond=event.ts.microsecond // 1000 * 1000)
        assert row["ts"].replace(tzinfo=UTC) == ts, ("ts", position)
        want.pop("ts")
        assert json.loads(row["properties"]) == want.pop("properties"), ("properties", position)
        for column, value in want.items():
            assert row[column] == value, (column, position, row[column], value)
    # The partials of this batch count exactly its stored events.
    counted = store.client.query(
        "SELECT sum(events) FROM pulse.product_metrics_1m FINAL "
        "WHERE (src_partition, batch_start) IN {keys:Array(Tuple(UInt16, UInt64))}",
        parameters={"keys": sorted({(k.src_partition, k.batch_start) for k in partials(batch)})},
    ).result_rows[0][0]
    assert counted == len(batch.raw_rows)


# --- the corpus --------------------------------------------------------------------------------------------


def test_corpus_has_a_manifest_entry_for_every_file():
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "manifest.yaml"}
    assert on_disk == set(MANIFEST["files"])
    assert len(on_disk) >= 30
    for name, entry in MANIFEST["files"].items():
        assert set(expand(entry["expected"])) <= OUTCOMES, name
        assert isinstance(entry["pack"], bool), name


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_corpus_file_has_its_expected_outcome(name: str, store: ClickHouseSink):
    entry = MANIFEST["files"][name]
    raw = (CORPUS / name).read_bytes()
    offset = next(_positions)
    msg = Message(CORPUS_PARTITION, offset, b"corpus", raw, PACK_HEADERS if entry["pack"] else None)
    batch = run_batch([msg], max_age_s=CORPUS_MAX_AGE_S)
    payloads = unpack(msg)
    got = outcomes(batch, len(payloads))
    expected = expand(entry["expected"])
    assert [got[i][0] for i in sorted(got)] == expected, f"{name}: {entry['note']}"
    if "detail" in entry:
        for outcome, detail in got.values():
            if outcome in REASONS:
                assert entry["detail"] in detail, (name, detail)
    # What the decoder accepted, ClickHouse accepts and stores unchanged; dead letters land in ingestion_errors.
    write(store, batch)
    decoded = {}
    for i, value in enumerate(payloads):
        ev = decode_event(value, CORPUS_SETTINGS["max_event_bytes"])
        if not isinstance(ev, DecodeError):
            decoded[CORPUS_PARTITION, offset, i] = ev
    assert_stored_exactly(store, batch, decoded)
    n_errors = store.client.query(
        "SELECT count() FROM pulse.ingestion_errors FINAL "
        "WHERE kafka_partition = {p:UInt16} AND kafka_offset = {o:UInt64}",
        parameters={"p": CORPUS_PARTITION, "o": offset},
    ).result_rows[0][0]
    assert n_errors == len(batch.dead)


def test_sql_looking_strings_round_trip_byte_for_byte(store: ClickHouseSink):
    raw = (CORPUS / "sql_strings_request.json").read_bytes()
    offset = next(_positions)
    batch = run_batch([Message(CORPUS_PARTITION, offset, None, raw)], max_age_s=CORPUS_MAX_AGE_S)
    assert len(batch.raw_rows) == 1
    write(store, batch)
    sent = json.loads(raw)
    row = store.client.query(
        "SELECT product, version, user_id, session_id, environment, platform, operation, error, properties "
        "FROM pulse.events WHERE kafka_partition = {p:UInt16} AND kafka_offset = {o:UInt64}",
        parameters={"p": CORPUS_PARTITION, "o": offset},
    ).named_results()
    (stored,) = list(row)
    for field in ("product", "version", "user_id", "session_id", "environment", "platform", "operation", "error"):
        assert stored[field] == sent[field], field
    assert json.loads(stored["properties"]) == sent["properties"]
    tables = {r[0] for r in store.client.query("SHOW TABLES FROM pulse").result_rows}
    assert {"events", "product_metrics_1m", "ingestion_errors"} <= tables


# --- strategies --------------------------------------------------------------------------------------------

NOW = datetime.now(UTC)
TEXT = st.text(max_size=40)  # any unicode but lone surrogates: control characters, NUL, astral planes
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**31, 2**32, 2**63, 2**64, 10**30, -(10**30), 10**400]),
    st.floats(),  # NaN and +-Infinity included: json.dumps writes the non-JSON literals
    TEXT,
)
ANY_JSON = st.recursive(
    LEAF, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4), max_leaves=12
)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def timestamps(draw: st.DrawFn) -> object:
    """Event times the worker keeps (within the age and future bounds), in any offset and form."""
    seconds = draw(st.floats(min_value=-(MAX_AGE_S - 86_400.0), max_value=50 * 60.0))
    ts = (NOW + timedelta(seconds=seconds)).astimezone(draw(OFFSETS))
    form = draw(st.sampled_from(["iso", "iso", "iso", "epoch", "z"]))
    if form == "epoch":
        return int(ts.timestamp())
    if form == "z":
        return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return ts.isoformat()


def name(max_size: int) -> st.SearchStrategy[str]:
    return st.text(min_size=1, max_size=max_size)


LABEL = st.text(max_size=64)
DURATION = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
COUNT = st.integers(min_value=0, max_value=2**64)
TYPE_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "session_started": {},
    "session_ended": {
        "status": st.sampled_from(["ok", "exited", "crashed", "abnormal"]),
        "errors": COUNT,
        "duration_ms": DURATION,
    },
    "feature_used": {"feature": name(128), "success": st.booleans(), "duration_ms": DURATION},
    "request": {
        "operation": name(128),
        "latency_ms": st.floats(min_value=0, max_value=86_400_000),
        "status_code": st.integers(0, 599),
        "error": LABEL,
    },
    "error": {"kind": name(128), "handled": st.booleans()},
    "conversion": {"goal": name(128), "value": DURATION, "currency": st.from_regex(r"\A[A-Z]{3}\Z")},
    "feedback": {"kind": st.sampled_from(["nps", "csat"]), "score": st.integers(0, 10)},
    "support_ticket": {
        "ticket_id": name(128),
        "action": st.sampled_from(["opened", "resolved"]),
        "severity": st.sampled_from(["low", "medium", "high", "critical"]),
    },
}
EVENT_IDS = st.uuids().flatmap(
    lambda u: st.sampled_from([str(u), u.hex, str(u).upper(), f"urn:uuid:{u}", "{" + str(u) + "}"])
)
ENVELOPE: dict[str, st.SearchStrategy[Any]] = {
    "event_id": EVENT_IDS,
    "product": name(64),
    "version": name(64),
    "ts": timestamps(),
    "user_id": name(128),
    "session_id": LABEL,
    "environment": LABEL,
    "platform": LABEL,
    "properties": st.dictionaries(TEXT, ANY_JSON, max_size=5),
}
OPTIONAL = {"event_id", "session_id", "environment", "platform", "properties"}


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON-ready event of a random type whose every field is drawn from its valid range (extremes included)."""
    kind = draw(st.sampled_from(EVENT_TYPES))
    body: dict[str, Any] = {"type": kind}
    for field, strategy in {**ENVELOPE, **TYPE_FIELDS[kind]}.items():
        if field in OPTIONAL and draw(st.booleans()):
            continue
        body[field] = draw(strategy)
    return body


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with some fields dropped, replaced by any JSON value, or added; sometimes another type."""
    body = draw(valid_events())
    for field in draw(st.lists(st.sampled_from(sorted(body)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del body[field]
        else:
            body[field] = draw(ANY_JSON)
    for _ in range(draw(st.integers(0, 2))):
        body[draw(st.sampled_from([*ENVELOPE, *TYPE_FIELDS["request"], "type", "extra"]) | TEXT)] = draw(ANY_JSON)
    if draw(st.integers(0, 9)) == 0:
        body["type"] = draw(st.sampled_from([*EVENT_TYPES, "Request", "", "release"]) | TEXT)
    return body


def to_json(body: dict[str, Any], ascii_only: bool) -> bytes:
    return json.dumps(body, ensure_ascii=ascii_only, allow_nan=True).encode("utf-8", "surrogatepass")


def assert_decoded(result: object) -> None:
    assert isinstance(result, (DecodeError, *EVENT_TYPE_CLASSES)), type(result)
    if isinstance(result, DecodeError):
        assert result.reason in REASONS
        assert isinstance(result.detail, str)


@st.composite
def mutated_bytes(draw: st.DrawFn) -> bytes:
    """The bytes of a valid event with a few bytes flipped, cut out or inserted."""
    raw = bytearray(to_json(draw(valid_events()), draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and at < len(raw):
            raw[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[at : at + draw(st.integers(1, 8))]
        else:
            raw[at:at] = draw(st.sampled_from([b"\n", b"\x00", b"\xff", b'"', b"}", b"{", b"NaN", b"\\u", b"1e999"]))
    return bytes(raw)


ANY_BYTES = st.binary(max_size=600) | mutated_bytes()


# --- properties --------------------------------------------------------------------------------------------


@settings(BOUNDED, max_examples=300)
@given(raw=ANY_BYTES, max_bytes=st.sampled_from([256, 1024, 64 * 1024]))
def test_any_bytes_give_an_event_or_a_decode_error(raw: bytes, max_bytes: int):
    assert_decoded(decode_event(raw, max_bytes))


@settings(BOUNDED, max_examples=200)
@given(values=st.lists(ANY_BYTES | st.none(), min_size=1, max_size=5), packed=st.lists(st.booleans(), min_size=5))
def test_any_messages_go_through_the_batch_step_and_each_event_is_accounted_for(values, packed):
    messages = [Message(i % 3, 10 + i, None, v, PACK_HEADERS if packed[i] else None) for i, v in enumerate(values)]
    batch = run_batch(messages)
    payloads = sum(len(unpack(m)) for m in messages)
    assert len(batch.raw_rows) + len(batch.dead) + batch.duplicates == payloads


@settings(BOUNDED, max_examples=300)
@given(body=mutated_events(), ascii_only=st.booleans())
def test_mutated_events_never_make_the_decoder_raise(body: dict[str, Any], ascii_only: bool):
    assert_decoded(decode_event(to_json(body, ascii_only)))


@settings(BOUNDED, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(valid_events() | mutated_events(), min_size=1, max_size=6),
    as_pack=st.booleans(),
    ascii_only=st.booleans(),
)
def test_every_accepted_event_becomes_a_row_clickhouse_stores_exactly(
    store: ClickHouseSink, bodies: list[dict[str, Any]], as_pack: bool, ascii_only: bool
):
    n = next(_positions)
    partition, offset = n % 1000, n * 10
    values = [to_json(b, ascii_only) for b in bodies]
    if as_pack:
        messages = [Message(partition, offset, None, b"\n".join(values), PACK_HEADERS)]
        where = [(offset, i) for i in range(len(values))]
    else:
        messages = [Message(partition, offset + i, None, v) for i, v in enumerate(values)]
        where = [(offset + i, 0) for i in range(len(values))]
    batch = run_batch(messages)
    assert len(batch.raw_rows) + len(batch.dead) + batch.duplicates == len(values)
    write(store, batch)  # ClickHouse accepts every row the decoder accepted (it raises otherwise)
    events = {}
    for (o, i), value in zip(where, values, strict=True):
        ev = decode_event(value)
        if not isinstance(ev, DecodeError):
            events[partition, o, i] = ev
    assert_stored_exactly(store, batch, events)


def test_position_ids_are_deterministic_for_idless_events():
    body = {"type": "session_started", "product": "p", "version": "1", "ts": NOW.isoformat(), "user_id": "u"}
    msg = Message(3, 42, None, json.dumps(body).encode())
    first, again = run_batch([msg]), run_batch([msg])
    ids = [json.loads(json_rows(b.raw_rows)[0])["event_id"] for b in (first, again)]
    assert ids[0] == ids[1]
    elsewhere = json_rows(run_batch([msg._replace(offset=43)]).raw_rows)[0]
    assert uuid.UUID(ids[0]) != uuid.UUID(json.loads(elsewhere)["event_id"])


# --- the fast decode path agrees with the models --------------------------------------------------------


def assert_fast_path_agrees(raw: bytes | None, max_bytes: int = 64 * 1024, got: object = None) -> None:
    """decode_fast (or ``got``) decides what decode_event decides (as in tests/consumers/test_fast_decode.py)."""
    want = decode_event(raw, max_bytes)
    if got is None:
        got = decode_fast(raw, max_bytes)
    if isinstance(want, DecodeError):
        assert got == want, (raw, got, want)
        return
    assert not isinstance(got, DecodeError), (raw, got, want)
    ev, ts, us = got
    assert ts == want.ts.timestamp() and utc_datetime(us) == want.ts, (raw, ts, us, want.ts)
    assert (ev.event_id is msgspec.UNSET) == ("event_id" not in want.model_fields_set)
    fields = msgspec.structs.asdict(ev)
    fields.update(type=ev.type, ts=utc_datetime(us), event_id=ev.event_id or want.event_id)
    assert encode_event(EVENT_ADAPTER.validate_python(fields)) == encode_event(want), raw
    for name in ev.__struct_fields__:
        if name not in ("ts", "event_id", "properties"):
            assert repr(getattr(ev, name)) == repr(getattr(want, name)), (name, raw)


@settings(BOUNDED, max_examples=500)
@given(raw=ANY_BYTES | st.none(), max_bytes=st.sampled_from([256, 1024, 64 * 1024]))
def test_fast_path_agrees_on_any_bytes(raw: bytes | None, max_bytes: int):
    assert_fast_path_agrees(raw, max_bytes)


@settings(BOUNDED, max_examples=500)
@given(body=valid_events() | mutated_events(), ascii_only=st.booleans())
def test_fast_path_agrees_on_generated_events(body: dict[str, Any], ascii_only: bool):
    assert_fast_path_agrees(to_json(body, ascii_only))


@settings(BOUNDED, max_examples=200)
@given(bodies=st.lists(valid_events() | mutated_events(), min_size=1, max_size=8), ascii_only=st.booleans())
def test_fast_path_agrees_on_generated_batches(bodies: list[dict[str, Any]], ascii_only: bool):
    raws = [to_json(b, ascii_only) for b in bodies]
    for raw, got in zip(raws, decode_many(raws), strict=True):
        assert_fast_path_agrees(raw, got=got)
