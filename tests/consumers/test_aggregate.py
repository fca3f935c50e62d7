"""Unit tests of the pure batch aggregation (no Kafka, no ClickHouse)."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.batch_views import aggregate_batch, breakdown, first, json_rows, partials

from consumers.aggregate import BatchResult, aggregate_decoded
from consumers.decode import DecodedBatch, decode_batch, decode_portable, portable_messages
from consumers.dedup import SeenIds, Watermarks
from consumers.partials import COUNTERS, KEY_COLUMNS, PARTIAL_COLUMNS, PartialKey
from consumers.records import Message
from pipeline.catalog.histogram import bucket_of
from pipeline.events import EVENT_ADAPTER, Event, encode_event, encode_pack, partition_key, position_event_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MINUTE0 = int(T0.timestamp())
NOW_S = T0.timestamp() + 30
PACK_HEADERS = [("pulse.format", b"ndjson")]


def ev(type_: str, *, ts: datetime = T0, product: str = "shop", version: str = "1.0", **fields: object) -> Event:
    return EVENT_ADAPTER.validate_python(
        {"type": type_, "product": product, "version": version, "ts": ts, "user_id": "u1", **fields}
    )


def _bytes(item: Event | bytes) -> bytes:
    return item if isinstance(item, bytes) else encode_event(item)


def single(partition: int, offset: int, item: Event | bytes) -> Message:
    return Message(partition, offset, None, _bytes(item))


def pack(partition: int, offset: int, *items: Event | bytes) -> Message:
    return Message(partition, offset, None, encode_pack([_bytes(i) for i in items]), PACK_HEADERS)


def run(
    messages: list[Message],
    seen: SeenIds | None = None,
    watermarks: Watermarks | None = None,
    *,
    now_s: float = NOW_S,
    max_future_skew_s: float = 3600,
    max_age_s: float = 400 * 86_400,
    lateness: float = 300,
) -> BatchResult:
    return aggregate_batch(
        messages,
        SeenIds(10_000) if seen is None else seen,
        Watermarks(lateness) if watermarks is None else watermarks,
        now_s=now_s,
        max_event_bytes=64 * 1024,
        max_future_skew_s=max_future_skew_s,
        max_age_s=max_age_s,
    )


def counters(result: BatchResult, key: PartialKey | None = None) -> dict[str, float]:
    if key is None:
        (key,) = partials(result)
    return dict(zip(COUNTERS, partials(result)[key].counters, strict=True))


def nonzero(counts: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in counts.items() if v}


# --- raw rows ------------------------------------------------------------------------


def test_one_raw_row_per_event():
    a, b = ev("session_started"), ev("error", kind="E")
    packed = [ev("feature_used", feature="f"), ev("request", operation="o", latency_ms=5), ev("session_started")]
    result = run([single(0, 10, a), pack(0, 11, *packed), single(2, 3, b)])
    assert len(result.raw_rows) == 5
    assert result.dead == []
    assert result.duplicates == 0
    assert result.products == {"shop": 5}


def test_raw_row_is_the_event_with_its_kafka_position():
    events = [ev("session_started"), ev("error", kind="E")]
    result = run([pack(4, 77, *events)])
    rows = [json.loads(r) for r in json_rows(result.raw_rows)]
    assert [(r["kafka_partition"], r["kafka_offset"], r["pack_index"]) for r in rows] == [(4, 77, 0), (4, 77, 1)]
    for row, event in zip(rows, events, strict=True):
        for position in ("kafka_partition", "kafka_offset", "pack_index"):
            del row[position]
        assert row == json.loads(encode_event(event))


def test_pack_header_is_required_to_split():
    events = [ev("session_started"), ev("session_started")]
    msg = Message(0, 1, None, encode_pack([encode_event(e) for e in events]), [("other", b"ndjson")])
    result = run([msg])
    assert len(result.raw_rows) == 0
    assert [(d.index, d.error.reason) for d in result.dead] == [(0, "bad_json")]


def test_dict_headers_mark_a_pack():
    events = [ev("session_started"), ev("session_started")]
    msg = Message(0, 1, None, encode_pack([encode_event(e) for e in events]), {"pulse.format": b"ndjson"})
    assert len(run([msg]).raw_rows) == 2


# --- counters ------------------------------------------------------------------------


def mixed_events() -> list[Event]:
    return [
        ev("session_started"),
        ev("session_started"),
        ev("session_ended", status="ok", errors=0, duration_ms=100),
        ev("session_ended", status="ok", errors=2, duration_ms=50),  # errored
        ev("session_ended", status="crashed", errors=3, duration_ms=10),  # crashed, not "errored"
        ev("session_ended", status="exited", errors=0, duration_ms=0.5),
        ev("session_ended", status="abnormal", errors=1, duration_ms=4.5),  # errored
        ev("feature_used", feature="search", success=True),
        ev("feature_used", feature="search", success=True),
        ev("feature_used", feature="export", success=False),
        ev("request", operation="o", latency_ms=10.0, status_code=200),
        ev("request", operation="o", latency_ms=20.0, status_code=500),  # error
        ev("request", operation="o", latency_ms=30.0, status_code=404),
        ev("request", operation="o", latency_ms=40.0, status_code=200, error="timeout"),  # error
        ev("request", operation="o", latency_ms=0.5, status_code=599),  # error
        ev("request", operation="o", latency_ms=1.0, status_code=499),
        ev("error", kind="TypeError", handled=False),
        ev("error", kind="TypeError", handled=False),
        ev("error", kind="Timeout", handled=True),
        ev("conversion", goal="checkout", value=9.99),
        ev("conversion", goal="signup", value=20.01, currency="EUR"),
        ev("feedback", kind="nps", score=10),
        ev("feedback", kind="nps", score=9),
        ev("feedback", kind="nps", score=8),
        ev("feedback", kind="nps", score=7),
        ev("feedback", kind="nps", score=6),
        ev("feedback", kind="nps", score=0),
        ev("feedback", kind="csat", score=5),
        ev("feedback", kind="csat", score=3),
        ev("support_ticket", ticket_id="T1", action="opened"),
        ev("support_ticket", ticket_id="T2", action="opened"),
        ev("support_ticket", ticket_id="T1", action="resolved"),
    ]


EXPECTED_MIXED = {
    "events": 32,
    "sessions_started": 2,
    "sessions_ended": 5,
    "sessions_ok": 2,
    "sessions_exited": 1,
    "sessions_crashed": 1,
    "sessions_abnormal": 1,
    "sessions_errored": 2,
    "session_duration_ms_sum": 165.0,
    "feature_uses": 3,
    "feature_successes": 2,
    "requests": 6,
    "request_errors": 3,
    "latency_ms_sum": 101.5,
    "errors": 3,
    "errors_unhandled": 2,
    "conversions": 2,
    "revenue": pytest.approx(30.0),
    "nps_promoters": 2,
    "nps_passives": 2,
    "nps_detractors": 2,
    "csat_sum": 8,
    "csat_count": 2,
    "tickets_opened": 2,
    "tickets_resolved": 1,
}


def test_every_counter_has_an_expectation():
    assert set(EXPECTED_MIXED) == set(COUNTERS) - {"late_events"}


def test_counters_of_single_events():
    messages = [single(0, 100 + i, e) for i, e in enumerate(mixed_events())]
    result = run(messages)
    assert list(partials(result)) == [PartialKey("shop", "1.0", MINUTE0, 0, 100)]
    assert nonzero(counters(result)) == EXPECTED_MIXED


def test_counters_of_packs_equal_counters_of_single_events():
    events = mixed_events()
    messages = [pack(0, 100, *events[:10]), pack(0, 101, *events[10:20]), single(0, 102, events[20])]
    messages.append(pack(0, 103, *events[21:]))
    result = run(messages)
    assert len(result.raw_rows) == 32
    assert nonzero(counters(result)) == EXPECTED_MIXED


def test_counters_are_per_product_and_version():
    messages = [
        single(0, 1, ev("session_started", product="shop", version="1.0")),
        single(0, 2, ev("session_started", product="shop", version="1.1")),
        single(0, 3, ev("session_started", product="shop", version="1.1")),
        single(0, 4, ev("session_started", product="blog", version="1.0")),
    ]
    result = run(messages)
    events = {(k.product, k.version): p.counters[COUNTERS.index("events")] for k, p in partials(result).items()}
    assert events == {("shop", "1.0"): 1, ("shop", "1.1"): 2, ("blog", "1.0"): 1}
    assert result.products == {"shop": 3, "blog": 1}


# --- keys: minute and batch_start ----------------------------------------------------


def test_minute_is_event_time_floored_to_the_minute():
    ts_list = [
        T0 + timedelta(seconds=59, microseconds=999_999),
        T0 + timedelta(minutes=1),
        T0 - timedelta(microseconds=1),
        T0 - timedelta(hours=2) + timedelta(seconds=15),
    ]
    result = run([single(0, i, ev("session_started", ts=ts)) for i, ts in enumerate(ts_list)])
    assert result.dead == []
    minutes = Counter({k.minute: int(counters(result, k)["events"]) for k in partials(result)})
    assert minutes == {MINUTE0: 1, MINUTE0 + 60: 1, MINUTE0 - 60: 1, MINUTE0 - 2 * 3600: 1}


def test_minute_of_event_in_other_timezone_is_utc_minute():
    tz = datetime.fromisoformat("2024-05-01T14:00:42+02:00")
    result = run([single(0, 1, ev("session_started", ts=tz))])
    (key,) = partials(result)
    assert key.minute == MINUTE0


def test_batch_start_is_first_offset_of_the_partition_in_the_batch():
    messages = [
        single(0, 10, ev("session_started")),
        single(3, 7, ev("session_started", ts=T0 + timedelta(minutes=1))),
        single(0, 11, ev("session_started", ts=T0 + timedelta(minutes=1))),
        single(3, 8, ev("session_started")),
        pack(0, 12, ev("session_started", ts=T0 + timedelta(minutes=2))),
    ]
    result = run(messages)
    starts = {(k.src_partition, k.minute): k.batch_start for k in partials(result)}
    assert starts == {
        (0, MINUTE0): 10,
        (0, MINUTE0 + 60): 10,
        (0, MINUTE0 + 120): 10,
        (3, MINUTE0 + 60): 7,
        (3, MINUTE0): 7,
    }


def test_batch_start_counts_a_message_whose_events_are_all_dead():
    result = run([single(5, 40, b"{broken"), single(5, 41, ev("session_started"))])
    (key,) = partials(result)
    assert key.batch_start == 40


# --- dead letters --------------------------------------------------------------------


def test_bad_lines_in_a_pack_are_dead_lettered_and_good_lines_kept():
    good = [ev("session_started"), ev("error", kind="E"), ev("feature_used", feature="f")]
    bad_json = b'{"type": "request",'
    negative = b'{"type":"request","product":"p","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u",' + (
        b'"operation":"o","latency_ms":-3}'
    )
    msg = pack(2, 50, good[0], bad_json, good[1], negative, good[2])
    result = run([msg])
    assert [(d.index, d.error.reason, d.value) for d in result.dead] == [
        (1, "bad_json", bad_json),
        (3, "invalid", negative),
    ]
    assert all(d.message is msg for d in result.dead)
    assert "latency_ms" in result.dead[1].error.detail
    rows = [json.loads(r) for r in json_rows(result.raw_rows)]
    assert [r["pack_index"] for r in rows] == [0, 2, 4]
    assert [r["event_id"] for r in rows] == [str(e.event_id) for e in good]
    assert counters(result)["events"] == 3


def test_unknown_type_in_a_pack_is_dead_lettered():
    line = b'{"type":"page_view","product":"p","version":"1","ts":"2024-05-01T12:00:00Z","user_id":"u"}'
    result = run([pack(0, 1, ev("session_started"), line)])
    assert [(d.index, d.error.reason) for d in result.dead] == [(1, "unknown_type")]
    assert len(result.raw_rows) == 1


def test_blank_lines_in_a_pack_are_skipped():
    a, b = ev("session_started"), ev("session_started")
    msg = Message(0, 9, None, encode_event(a) + b"\n\n  \n" + encode_event(b) + b"\n", PACK_HEADERS)
    result = run([msg])
    assert result.dead == []
    assert [json.loads(r)["pack_index"] for r in json_rows(result.raw_rows)] == [0, 1]


def test_lone_bad_message_and_empty_value():
    result = run([single(0, 1, b"[]"), Message(0, 2, b"k", None), single(0, 3, ev("session_started"))])
    assert [(d.message.offset, d.index, d.error.reason) for d in result.dead] == [
        (1, 0, "bad_json"),
        (2, 0, "bad_json"),
    ]
    assert len(result.raw_rows) == 1


def test_oversized_event_is_dead_lettered():
    big = ev("session_started", properties={"blob": "x" * 70_000})
    result = run([single(0, 1, big)])
    assert [d.error.reason for d in result.dead] == ["oversized"]
    assert len(result.raw_rows) == 0


def test_event_too_far_in_the_future_is_dead_lettered():
    too_far = ev("session_started", ts=datetime.fromtimestamp(NOW_S + 3600 + 1, tz=UTC))
    just_ok = ev("session_started", ts=datetime.fromtimestamp(NOW_S + 3600, tz=UTC))
    result = run([single(0, 1, too_far), single(0, 2, just_ok)])
    assert [(d.message.offset, d.error.reason) for d in result.dead] == [(1, "future_ts")]
    assert "ahead" in result.dead[0].error.detail
    assert len(result.raw_rows) == 1


def test_event_before_1970_or_older_than_the_age_limit_is_dead_lettered_as_past_ts():
    before_epoch = ev("session_started", ts=datetime(1969, 12, 31, 23, 59, tzinfo=UTC))
    too_old = ev("session_started", ts=datetime.fromtimestamp(NOW_S - 86_400 - 1, tz=UTC))
    just_ok = ev("session_started", ts=datetime.fromtimestamp(NOW_S - 86_400, tz=UTC))
    result = run([single(0, 1, before_epoch), single(0, 2, too_old), single(0, 3, just_ok)], max_age_s=86_400)
    assert [(d.message.offset, d.error.reason) for d in result.dead] == [(1, "past_ts"), (2, "past_ts")]
    assert "oldest event time kept" in result.dead[0].error.detail
    assert len(result.raw_rows) == 1
    assert [k.minute for k in partials(result)] == [math.floor(NOW_S - 86_400) // 60 * 60]


def test_an_unbounded_age_still_refuses_times_before_1970():
    result = run([single(0, 1, ev("session_started", ts=datetime(1969, 12, 31, 23, 59, tzinfo=UTC)))],
                 max_age_s=math.inf)  # fmt: skip
    assert [d.error.reason for d in result.dead] == ["past_ts"]
    assert partials(result) == {}


def test_future_skew_of_zero():
    result = run([single(0, 1, ev("session_started", ts=T0 + timedelta(seconds=31)))], max_future_skew_s=0)
    assert len(result.dead) == 1
    assert partials(result) == {}


def test_future_event_does_not_move_the_watermark():
    marks = Watermarks(300)
    run([single(0, 1, ev("session_started", ts=T0 + timedelta(days=2)))], watermarks=marks)
    assert marks.max_ts == {}


# --- duplicates ----------------------------------------------------------------------


def test_duplicate_at_a_later_offset_counts_once():
    e = ev("request", operation="o", latency_ms=10)
    result = run([single(0, 5, e), single(0, 6, e)])
    assert result.duplicates == 1
    assert len(result.raw_rows) == 1
    assert counters(result)["requests"] == 1
    assert json.loads(json_rows(result.raw_rows)[0])["kafka_offset"] == 5


def test_duplicate_inside_one_pack_counts_once():
    e = ev("session_started")
    result = run([pack(0, 5, e, e, ev("session_started"))])
    assert result.duplicates == 1
    assert [json.loads(r)["pack_index"] for r in json_rows(result.raw_rows)] == [0, 2]


def test_same_id_on_different_partitions_counts_on_each():
    e = ev("session_started")
    result = run([single(0, 5, e), single(1, 5, e)])
    assert result.duplicates == 0
    assert len(result.raw_rows) == 2


def test_duplicate_in_a_later_batch_is_detected():
    seen = SeenIds(100)
    e = ev("session_started")
    assert len(run([single(0, 5, e)], seen).raw_rows) == 1
    later = run([single(0, 9, e)], seen)
    assert later.duplicates == 1
    assert len(later.raw_rows) == 0
    assert partials(later) == {}


def test_replaying_the_same_message_counts_it_again():
    seen = SeenIds(100)
    e = ev("conversion", goal="g", value=5)
    first = run([single(0, 5, e)], seen)
    replay = run([single(0, 5, e)], seen)
    assert (first.duplicates, replay.duplicates) == (0, 0)
    assert json_rows(replay.raw_rows) == json_rows(first.raw_rows)
    assert counters(replay)["revenue"] == 5


def test_replayed_batch_counts_again():
    seen, marks = SeenIds(100), Watermarks(300)
    e = ev("session_started")
    batch = [single(0, 5, e), single(0, 6, e), single(0, 7, ev("error", kind="E"))]
    first = run(batch, seen, marks)
    replay = run(batch, seen, marks)
    assert (first.duplicates, replay.duplicates) == (1, 1)
    assert json_rows(replay.raw_rows) == json_rows(first.raw_rows)
    assert partials(replay) == partials(first)


def test_replay_from_the_retry_offset_keeps_it_a_duplicate():
    seen = SeenIds(100)
    e = ev("session_started")
    run([single(0, 5, e), single(0, 6, e)], seen)
    replay = run([single(0, 6, e)], seen)  # batch restarted at offset 6
    assert replay.duplicates == 1


def test_seen_ids_first_semantics():
    seen = SeenIds(10)
    assert first(seen, 0, 5, 42) is True
    assert first(seen, 0, 5, 42) is True  # replay of the first delivery
    assert first(seen, 0, 6, 42) is False  # a later copy
    assert first(seen, 0, 3, 42) is True  # an earlier offset becomes the first one
    assert first(seen, 0, 5, 42) is False
    assert first(seen, 1, 9, 42) is True  # other partition
    assert len(seen) == 2


def test_seen_ids_capacity_evicts_oldest():
    seen = SeenIds(3)
    for i in range(10):
        assert first(seen, 0, i, 1000 + i) is True
        assert len(seen) <= 3
    assert len(seen) == 3
    assert first(seen, 0, 100, 1009) is False  # newest are remembered
    assert first(seen, 0, 100, 1007) is False
    assert first(seen, 0, 100, 1000) is True  # oldest was forgotten


def test_seen_ids_capacity_across_partitions():
    seen = SeenIds(4)
    for i in range(20):
        first(seen, i % 3, i, i)
    assert len(seen) == 4


def test_seen_ids_capacity_zero_remembers_nothing():
    seen = SeenIds(0)
    assert first(seen, 0, 1, 7) is True
    assert first(seen, 0, 2, 7) is True
    assert len(seen) == 0


def test_seen_ids_forget():
    seen = SeenIds(10)
    first(seen, 0, 1, 7)
    first(seen, 0, 2, 8)
    first(seen, 1, 1, 7)
    seen.forget(0)
    assert len(seen) == 1
    assert first(seen, 0, 5, 7) is True  # forgotten
    assert first(seen, 1, 5, 7) is False  # other partition kept
    seen.forget(99)  # unknown partition is fine
    assert len(seen) == 2


def test_seen_ids_remember_warms_up():
    seen = SeenIds(10)
    seen.remember(0, [(7, 30), (8, 10), (7, 20)])
    assert len(seen) == 2
    assert first(seen, 0, 25, 7) is False
    assert first(seen, 0, 20, 7) is True
    assert first(seen, 0, 11, 8) is False


def _first_one_by_one(seen: dict[int, dict[int, int]], partition: int, position: int, event_id: int) -> bool:
    """The dedup rule, stated plainly: an id counts at its smallest position in its partition."""
    known = seen.setdefault(partition, {})
    prev = known.get(event_id)
    if prev is not None and prev < position:
        return False
    known[event_id] = position
    return True


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30), st.integers(0, 12)), max_size=25), max_size=6)
)
def test_first_many_answers_as_one_by_one(batches):
    """Whole-batch dedup (unique ids or repeated ones, replays, earlier positions) equals the event-by-event rule."""
    seen, reference = SeenIds(10**6), {}
    for batch in batches:
        for partition in range(3):
            pairs = [(pos, i) for p, pos, i in batch if p == partition]
            expected = [_first_one_by_one(reference, partition, pos, i) for pos, i in pairs]
            assert seen.first_many(partition, [pos for pos, _ in pairs], [i for _, i in pairs]) == expected
    assert len(seen) == sum(map(len, reference.values()))


def test_first_many_stays_within_capacity_and_keeps_the_newest():
    seen = SeenIds(100)
    for start in range(0, 1000, 50):
        assert (
            seen.first_many(start // 50 % 3, list(range(start, start + 50)), list(range(start, start + 50)))
            == [True] * 50
        )
        assert len(seen) <= 100
    assert seen.first_many(1, [10**6], [999]) == [False]  # the newest ids are remembered
    assert seen.first_many(0, [10**6], [0]) == [True]  # the oldest were forgotten


def test_a_batch_decoded_in_another_process_aggregates_the_same():
    """What crosses from the decode process (plain lists in, Arrow and lists out, through pickle) decides alike."""
    now = datetime.fromtimestamp(NOW_S, UTC)
    good = [ev("request", operation="o", latency_ms=12), ev("feature_used", feature="f", success=True)]
    messages = [
        pack(0, 10, *good, b"{not json", ev("session_started", ts=now + timedelta(days=1))),
        single(0, 11, good[0]),  # a later copy of an id: a duplicate
        single(1, 3, ev("conversion", goal="g", value=5, ts=now - timedelta(days=500))),  # past the maximum age
        single(1, 4, b'{"type": "nope"}'),
        single(1, 5, b'{"type": "request", "product": "shop"}'),  # fields missing
        Message(2, 7, None, None),
        pack(2, 8, ev("error", kind="E", ts=T0 - timedelta(minutes=10)), ev("session_ended", status="crashed")),
    ]

    def aggregate(decoded: DecodedBatch, rejected: dict | None = None) -> BatchResult:
        return aggregate_decoded(decoded, SeenIds(100), Watermarks(300), NOW_S, 3600, 400 * 86_400, rejected)

    at_home = decode_batch(messages, 64 * 1024, "t")
    travelled = pickle.loads(pickle.dumps(decode_portable(portable_messages(messages), 64 * 1024, "t"))).attach(
        messages
    )
    assert travelled.events == [] and travelled.raws == []  # it really came without per-event objects
    for rejected in (None, {(2, 8, 1): "the store refused it"}):
        mine, theirs = aggregate(at_home, rejected), aggregate(travelled, rejected)
        assert theirs.raw_rows.arrow_batch().equals(mine.raw_rows.arrow_batch())
        assert partials(theirs) == partials(mine) and breakdown(theirs) == breakdown(mine)
        assert [(d.message, d.index, d.value, d.error) for d in theirs.dead] == [
            (d.message, d.index, d.value, d.error) for d in mine.dead
        ]
        assert (theirs.duplicates, theirs.late, theirs.products) == (mine.duplicates, mine.late, mine.products)
    assert {d.error.reason for d in mine.dead} == {
        "bad_json",
        "future_ts",
        "past_ts",
        "unknown_type",
        "invalid",
        "rejected_by_store",
    }


# --- late events -----------------------------------------------------------------------


def test_late_event_is_counted_and_tallied():
    marks = Watermarks(300)
    result = run(
        [
            single(0, 1, ev("session_started", ts=T0)),
            single(0, 2, ev("session_started", ts=T0 - timedelta(seconds=301))),
            single(0, 3, ev("session_started", ts=T0 - timedelta(seconds=300))),
            single(0, 4, ev("session_started", ts=T0 - timedelta(seconds=299))),
        ],
        watermarks=marks,
    )
    assert result.late == 1
    assert marks.max_ts == {0: T0.timestamp()}
    late_key = PartialKey("shop", "1.0", MINUTE0 - 360, 0, 1)
    assert nonzero(counters(result, late_key)) == {"events": 1, "late_events": 1, "sessions_started": 1}
    assert sum(counters(result, k)["events"] for k in partials(result)) == 4
    assert len(result.raw_rows) == 4


def test_watermark_carries_across_batches_per_partition():
    marks = Watermarks(60)
    run([single(0, 1, ev("session_started", ts=T0))], watermarks=marks)
    old = ev("session_started", ts=T0 - timedelta(minutes=5))
    result = run([single(0, 2, old), single(1, 1, old)], watermarks=marks)
    late = {k.src_partition: counters(result, k)["late_events"] for k in partials(result)}
    assert late == {0: 1, 1: 0}
    assert result.late == 1


def test_out_of_order_within_lateness_is_not_late():
    result = run(
        [single(0, i, ev("session_started", ts=T0 + timedelta(seconds=s))) for i, s in enumerate([50, 10, 40, 0])]
    )
    assert result.late == 0


# --- the partials as written (Arrow) ------------------------------------------------------


def partial_rows(result: BatchResult) -> list[dict[str, object]]:
    """product_metrics_1m rows exactly as the sink inserts them (the Arrow stream, read back)."""
    table = pa.ipc.open_stream(result.partial_table.to_arrow()).read_all()
    assert tuple(table.column_names) == PARTIAL_COLUMNS
    return table.to_pylist()


def test_written_partials_are_aligned():
    latencies = [0.0, 3.2, 3.2, 150.0, 2_000.0]
    events = [ev("request", operation="o", latency_ms=ms) for ms in latencies]
    events += [
        ev("session_started", ts=T0 + timedelta(minutes=1)),
        ev("request", operation="o", latency_ms=1, version="2"),
    ]
    result = run([pack(6, 300, *events[:3]), pack(6, 301, *events[3:])])
    rows = partial_rows(result)
    assert len(rows) == len(partials(result)) == 3

    for row, (key, part) in zip(rows, partials(result).items(), strict=True):
        assert [row[c] for c in KEY_COLUMNS if c != "minute"] == [key.product, key.version, 6, 300]
        assert row["minute"] == datetime.fromtimestamp(key.minute, tz=UTC)
        assert row["minute"].tzinfo is not None and row["minute"].utcoffset() == timedelta(0)
        assert [row[c] for c in COUNTERS] == part.counters
        assert row["latency_bucket"] == sorted(row["latency_bucket"])
        assert sum(row["latency_count"]) == row["requests"]

    by_key = {(r["version"], r["minute"]): r for r in rows}
    main = by_key["1.0", T0]
    expected = Counter(bucket_of(ms) for ms in latencies)
    assert dict(zip(main["latency_bucket"], main["latency_count"], strict=True)) == expected
    assert main["requests"] == 5
    assert main["latency_ms_sum"] == pytest.approx(sum(latencies))
    sessions = by_key["1.0", T0 + timedelta(minutes=1)]
    assert (sessions["latency_bucket"], sessions["latency_count"], sessions["sessions_started"]) == ([], [], 1)
    assert by_key["2", T0]["latency_count"] == [1]


def test_a_batch_of_bad_events_has_no_partials_to_write():
    result = run([single(0, 1, b"{not json")])
    assert len(result.partial_table) == 0 and len(result.breakdown_table) == 0 and len(result.dead) == 1


def test_partial_key_with_partition_key_helper():
    # partition_key is what producers use; the aggregation only reads (partition, offset)
    e = ev("session_started")
    msg = Message(2, 8, partition_key(e), encode_event(e))
    (key,) = partials(run([msg]))
    assert key == PartialKey("shop", "1.0", MINUTE0, 2, 8)


# --- ids derived from positions ------------------------------------------------------


def _id_less(**fields: object) -> bytes:
    body = {"type": "session_started", "product": "shop", "version": "1.0", "ts": T0.isoformat(), "user_id": "u1"}
    return json.dumps(body | fields).encode()


def _stored_ids(result: BatchResult) -> list[str]:
    return [json.loads(row)["event_id"] for row in json_rows(result.raw_rows)]


def test_an_id_less_event_gets_the_same_id_on_every_replay():
    messages = [single(0, 7, _id_less()), pack(0, 8, _id_less(), _id_less())]
    first = aggregate_batch(messages, SeenIds(100), Watermarks(300), now_s=NOW_S, max_event_bytes=65536,
                            max_future_skew_s=3600, topic="pulse.events")  # fmt: skip
    replay = aggregate_batch(messages, SeenIds(100), Watermarks(300), now_s=NOW_S, max_event_bytes=65536,
                             max_future_skew_s=3600, topic="pulse.events")  # fmt: skip
    ids = _stored_ids(first)
    assert ids == _stored_ids(replay)
    assert len(set(ids)) == 3, "each position has its own id"
    assert ids[0] == str(position_event_id("pulse.events", 0, 7, 0))


def test_an_event_with_its_own_id_keeps_it():
    own = "0f7c2a8e-3b1d-4c5e-9a6f-1b2c3d4e5f60"
    result = run([single(0, 1, _id_less(event_id=own))])
    assert _stored_ids(result) == [own]


def test_the_same_bytes_at_another_offset_are_another_event():
    result = run([single(0, 1, _id_less()), single(0, 2, _id_less())])
    assert len(set(_stored_ids(result))) == 2
    assert result.duplicates == 0
