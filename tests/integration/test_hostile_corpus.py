"""Acceptance (issue 7, point 2): the hostile-input corpus through a running worker, mixed with good events.

Every file of tests/data/bad_inputs/ is produced as one raw Kafka message (packs with the
``pulse.format: ndjson`` header) between good single-event messages. Once the group's lag is zero:
every hostile event is on the DLQ (and in ``ingestion_errors``) with the reason its manifest names,
or stored where the manifest says it is valid (with its exact values); every good event is stored
and counted; and the worker never stopped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from support.corpus import CORPUS, MANIFEST, expand
from support.truth import assert_totals_equal, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.events import DecodeError, decode_event, encode_event, split_pack
from pipeline.kafka.config import kafka_python_config

pytestmark = pytest.mark.integration

GOOD_PRODUCTS = ["checkout", "search", "profile"]
PACK_HEADERS = [("pulse.format", b"ndjson")]
BIG = 4 * 1024 * 1024  # the corpus holds a message of 1 MiB + a few hundred bytes
STRING_COLUMNS = (
    "product", "version", "user_id", "session_id", "environment", "platform",
    "operation", "error", "feature", "kind", "goal", "ticket_id",
)  # fmt: skip

Position = tuple[int, int, int]  # (partition, offset, index in the message)


def runs(outcomes: list[str]) -> str:
    """``[a, a, a, b]`` as ``a x3, b``: short enough to read for a pack of 1,000 events."""
    out: list[str] = []
    for outcome in outcomes:
        if out and out[-1].split(" x")[0] == outcome:
            head, _, n = out[-1].partition(" x")
            out[-1] = f"{head} x{int(n or 1) + 1}"
        else:
            out.append(outcome)
    return "[" + ", ".join(out) + "]"


def produce(settings, good: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """Every corpus file as one message between good events; returns file -> (partition, offset)."""
    files = list(MANIFEST["files"])
    per_file = len(good) // len(files) + 1
    producer = KafkaProducer(acks="all", max_request_size=BIG, linger_ms=5, retries=5, **kafka_python_config(settings))
    futures = {}
    try:
        for i, name in enumerate(files + [None]):
            for event in good[i * per_file : (i + 1) * per_file] if name else good[i * per_file :]:
                key = f"{event['product']}:{event['user_id']}".encode()
                producer.send(settings.events_topic, json.dumps(event).encode(), key=key)
            if name:
                headers = PACK_HEADERS if MANIFEST["files"][name]["pack"] else None
                futures[name] = producer.send(settings.events_topic, (CORPUS / name).read_bytes(), headers=headers)
        producer.flush(60)
        return {name: (f.get(timeout=30).partition, f.get(timeout=30).offset) for name, f in futures.items()}
    finally:
        producer.close(10)


def read_dlq(settings) -> list[Any]:
    """The whole DLQ topic, from the beginning until 5 s pass without a message."""
    consumer = KafkaConsumer(
        settings.dlq_topic,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=BIG,
        fetch_max_bytes=4 * BIG,
        **kafka_python_config(settings),
    )
    try:
        return list(consumer)
    finally:
        consumer.close()


def test_every_hostile_input_is_dead_lettered_or_stored_and_the_good_events_all_land(settings, start_worker):
    want_settings = MANIFEST["settings"]
    settings = settings.model_copy(update={"events_ttl_days": want_settings["events_ttl_days"]})
    assert settings.max_event_bytes == want_settings["max_event_bytes"]
    assert settings.max_future_skew_s == want_settings["max_future_skew_s"]
    good = make_events(200, GOOD_PRODUCTS, seed=17)
    problems: list[str] = []

    worker = start_worker(settings)
    where = produce(settings, good)

    # What each corpus event should become, by its position in the topic.
    expected: dict[Position, tuple[str, str]] = {}  # position -> (file, outcome)
    lines: dict[Position, bytes] = {}
    lines_of: dict[str, list[bytes]] = {}
    for name, (partition, offset) in where.items():
        entry = MANIFEST["files"][name]
        raw = (CORPUS / name).read_bytes()
        payloads = lines_of[name] = split_pack(raw) if entry["pack"] else [raw]
        for index, outcome in enumerate(expand(entry["expected"])):
            expected[partition, offset, index] = (name, outcome)
            if index < len(payloads):
                lines[partition, offset, index] = payloads[index]

    try:
        worker.wait_drained(settings.events_topic, timeout_s=90)
    except (TimeoutError, RuntimeError) as exc:
        log = [line[:300] for line in worker.log_text().splitlines() if "retry" in line or "GaveUp" in line]
        problems.append(
            f"the worker did not drain the topic: {str(exc).splitlines()[0]}\n    " + "\n    ".join(log[-3:])
        )
    alive = worker.proc is not None and worker.proc.poll() is None
    if not alive:
        problems.append(f"the worker exited (code {worker.proc.returncode if worker.proc else None})")
    dlq = read_dlq(settings)
    worker.stop()

    # The DLQ: one dead letter (or identical redeliveries) per hostile event, with its reason and headers.
    dead: dict[Position, set[str]] = defaultdict(set)
    for m in dlq:
        h = {k: v.decode(errors="replace") for k, v in m.headers}
        position = (int(h["source.partition"]), int(h["source.offset"]), int(h["source.index"]))
        dead[position].add(h["error.reason"])
        file, _ = expected.get(position, ("(a good event)", ""))
        for header in ("error.stage", "error.at", "error.detail"):
            if not h.get(header):
                problems.append(f"{file} {position}: dead letter without {header}")
        if h.get("source.topic") != settings.events_topic:
            problems.append(f"{file} {position}: source.topic {h.get('source.topic')!r}")
        detail = MANIFEST["files"].get(file, {}).get("detail")
        if detail and detail not in h.get("error.detail", ""):
            problems.append(f"{file} {position}: error.detail {h.get('error.detail')!r} does not name {detail!r}")

    with clickhouse.opened(settings) as client:
        errors: dict[Position, set[str]] = defaultdict(set)
        for p, o, i, reason in client.query(
            "SELECT kafka_partition, kafka_offset, pack_index, reason FROM pulse.ingestion_errors FINAL"
        ).result_rows:
            errors[p, o, i].add(reason)
        result = client.query(
            "SELECT * FROM pulse.events FINAL WHERE product NOT IN {good:Array(String)}",
            parameters={"good": GOOD_PRODUCTS},
        )
        rows = {(r["kafka_partition"], r["kafka_offset"], r["pack_index"]): r for r in result.named_results()}
        good_rows = client.query(
            "SELECT count(), uniqExact(event_id) FROM pulse.events FINAL WHERE product IN {good:Array(String)}",
            parameters={"good": GOOD_PRODUCTS},
        ).result_rows[0]
        corpus_counted = client.query(
            "SELECT sum(events) FROM pulse.product_metrics_1m FINAL WHERE product NOT IN {good:Array(String)}",
            parameters={"good": GOOD_PRODUCTS},
        ).result_rows[0][0]

    # Each corpus event against its expected outcome ("-": neither stored nor dead-lettered, as a duplicate is).
    for name, (partition, offset) in where.items():
        want = ["-" if o == "duplicate" else o for o in expand(MANIFEST["files"][name]["expected"])]
        got = []
        for index in range(max(len(want), len(lines_of.get(name, [])))):
            position = (partition, offset, index)
            got_dlq, got_table, stored = dead.pop(position, set()), errors.pop(position, set()), position in rows
            if not got_dlq and not got_table:
                got.append("stored" if stored else "-")
            elif got_dlq == got_table and len(got_dlq) == 1 and not stored:
                got.append(next(iter(got_dlq)))
            else:
                got.append(f"(DLQ {sorted(got_dlq)}, ingestion_errors {sorted(got_table)}, stored {stored})")
        if got != want:
            note = MANIFEST["files"][name].get("note", "")
            problems.append(f"{name}: expected {runs(want)}, got {runs(got)}" + (f" [known: {note}]" if note else ""))
    for position, reasons in sorted(dead.items()):
        problems.append(f"unexpected dead letter at {position}: {sorted(reasons)} (a good event or no event)")
    for position, reasons in sorted(errors.items()):
        problems.append(f"unexpected ingestion_errors row at {position}: {sorted(reasons)}")
    for position in sorted(set(rows) - set(expected)):
        problems.append(f"unexpected stored corpus row at {position}: product {rows[position]['product']!r}")

    # What was stored is byte-for-byte what was sent (SQL-looking and control characters included).
    for position, row in rows.items():
        if position not in lines:
            continue
        ev = decode_event(lines[position])
        if isinstance(ev, DecodeError):
            continue
        sent = json.loads(encode_event(ev))  # the canonical form: NaN and 1e400 in properties become null
        for column in STRING_COLUMNS:
            if column in sent and row[column] != sent[column]:
                problems.append(f"{expected[position][0]}: {column} stored as {row[column]!r}, sent {sent[column]!r}")
        if json.loads(row["properties"]) != sent["properties"]:
            problems.append(f"{expected[position][0]}: properties stored as {row['properties'][:200]!r}")
    # One of them spelled out: SQL-looking strings come back exactly as the file has them.
    sql_file = "sql_strings_request.json"
    sql_sent = json.loads((CORPUS / sql_file).read_bytes())
    sql_row = rows.get((*where[sql_file], 0))
    if sql_row is None:
        problems.append(f"{sql_file}: not stored")
    else:
        for column in ("product", "version", "user_id", "session_id", "environment", "platform", "operation", "error"):
            if sql_row[column] != sql_sent[column]:
                problems.append(f"{sql_file}: {column} stored as {sql_row[column]!r}, sent {sql_sent[column]!r}")
        if json.loads(sql_row["properties"]) != sql_sent["properties"]:
            problems.append(f"{sql_file}: properties stored as {sql_row['properties']!r}")
    n_stored = sum(1 for _, o in expected.values() if o == "stored")
    if corpus_counted != n_stored:
        problems.append(f"product_metrics_1m counts {corpus_counted} corpus events, {n_stored} were to be stored")

    # Every good event stored once and counted exactly.
    if tuple(good_rows) != (200, 200):
        problems.append(f"good events in events FINAL: (rows, ids) = {tuple(good_rows)}, want (200, 200)")
    totals = {p: t for p, t in stored_totals(settings).items() if p in GOOD_PRODUCTS}
    try:
        assert_totals_equal(totals, ground_truth(good))
    except AssertionError as exc:
        problems.append(f"good-event totals differ from the ground truth: {exc!r}")

    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
    assert alive
