"""The ClickHouse server path, exercised: production's clickhouse-connect HTTP client against a server.

The server is the test-only stand-in (``tests/support/chserver.py``): ClickHouse's
HTTP interface over the real ClickHouse engine (chDB) in a process of its own.
Every test goes through the code production runs with ``PULSE_CLICKHOUSE_DSN=
http://user:pass@host:port/`` - :func:`pipeline.clickhouse.connect`, the
migrations, the sink's Arrow and Native inserts, the catalog's bound
queries, the failure classes - and where the embedded engine answers the
same request, the answers are compared.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import clickhouse_connect
import pyarrow as pa
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from support.chserver import ChServer
from support.net import free_port
from support.truth import assert_totals_equal, ground_truth, make_events, stored_totals

from alerts.evaluator import build_evaluator
from consumers.failures import classify
from consumers.ingest import Ingestor
from consumers.records import DeadLetter, Message
from consumers.sink import ClickHouseSink
from pipeline import catalog, clickhouse
from pipeline.events import PACK_FORMAT, PACK_HEADER, Release
from pipeline.settings import Settings
from pipeline.usecases import reads, schema

PRODUCTS = ["checkout", "search", "profile"]
PACK = [(PACK_HEADER, PACK_FORMAT)]


@pytest.fixture
def client(server_store: Settings) -> Iterator[Client]:
    """The production client for the stand-in, with the whole schema migrated into this test's database."""
    schema.migrate_store(server_store)
    with clickhouse.opened(server_store) as c:
        yield c


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Client]:
    """Embedded chDB in this process, for answers to compare with the server's."""
    settings = Settings(data_dir=tmp_path / "embedded")
    with clickhouse.opened(settings) as c:
        yield c


def packs(events: list[dict[str, Any]], partition: int = 0, per_pack: int = 100) -> list[Message]:
    return [
        Message(partition, i // per_pack, None, b"\n".join(json.dumps(e).encode() for e in events[i : i + per_pack]),
                PACK)
        for i in range(0, len(events), per_pack)
    ]  # fmt: skip


def ingest(settings: Settings, store: Any, messages: Sequence[Message]) -> list[DeadLetter]:
    """One batch through the worker's durable step (the Ingestor and its ClickHouseSink), as the agent runs it."""
    dead: list[DeadLetter] = []

    async def send(batch: Sequence[DeadLetter]) -> None:
        dead.extend(batch)

    async def run() -> None:
        sink = ClickHouseSink(KeptOpen(store), settings.clickhouse_database)
        await Ingestor(settings, sink, send).process(messages)
        sink.close()

    asyncio.run(run())
    return dead


class KeptOpen:
    """A client the sink may close without closing it: the test goes on reading with it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _error(c: Client, sql: str, **kw: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        c.query(sql, **kw)
    return caught.value


# --- migrations ----------------------------------------------------------------------------------


def test_migrate_over_http_builds_the_schema_the_embedded_engine_builds(server_store, embedded):
    versions = [m.version for m in schema.MIGRATIONS if not m.access]  # no access management over chDB
    assert schema.migrate_store(server_store) == versions
    assert schema.migrate_store(server_store) == [], "a second migrate must change nothing"
    schema.migrate(embedded, server_store)

    def layout(c: Client) -> list[tuple[Any, ...]]:
        tables = c.query(
            "SELECT name, engine, sorting_key, partition_key FROM system.tables WHERE database = {db:String} "
            "ORDER BY name",
            parameters={"db": server_store.clickhouse_database},
        ).result_rows
        columns = c.query(
            "SELECT table, name, type, default_kind FROM system.columns WHERE database = {db:String} "
            "ORDER BY table, position",
            parameters={"db": server_store.clickhouse_database},
        ).result_rows
        return tables + columns

    with clickhouse.opened(server_store) as c:
        over_http = layout(c)
        recorded = c.query(
            f"SELECT version FROM {server_store.clickhouse_database}.schema_migrations FINAL"
        ).result_rows
    assert over_http == layout(embedded)
    assert {"events", "product_metrics_1m", "ingestion_errors", "releases", "users_1d"} <= {r[0] for r in over_http}
    assert sorted(v for (v,) in recorded) == versions


def test_a_dsn_naming_the_store_database_works_on_a_fresh_server(clickhouse_server, tmp_path):
    """``http://user:pass@host:8123/pulse`` (the README's shape) on a server that has no ``pulse`` yet.

    clickhouse-connect sends a DSN's database with every request, and a server
    refuses a request for a database that does not exist (UNKNOWN_DATABASE) -
    so the first ``pulse db migrate`` could never create it. :func:`connect`
    leaves the store's own database out of the DSN: every statement names it.
    """
    settings = Settings(
        data_dir=tmp_path,
        clickhouse_dsn=clickhouse_server.dsn("pulse_fresh_dsn"),
        clickhouse_database="pulse_fresh_dsn",
    )
    assert schema.migrate_store(settings) == [m.version for m in schema.MIGRATIONS if not m.access]
    other = Settings(data_dir=tmp_path, clickhouse_dsn=clickhouse_server.dsn("no_such_db"))
    with pytest.raises(DatabaseError) as caught:
        clickhouse.connect(other)  # any other database in the DSN must exist, as the server says
    assert caught.value.code == 81


# --- the worker's writes ---------------------------------------------------------------------------


def test_a_batch_lands_exactly_over_http_arrow_and_native_inserts(server_store, client):
    events = make_events(6_000, PRODUCTS, seed=71)
    bad = [b"{not json", json.dumps({**events[0], "type": "teleport"}).encode()]
    messages = packs(events) + [Message(0, 60 + i, None, value, []) for i, value in enumerate(bad)]
    dead = ingest(server_store, client, messages)

    db = server_store.clickhouse_database
    assert [d.error.reason for d in dead] == ["bad_json", "unknown_type"]
    n_rows, n_ids = client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL").result_rows[0]
    assert (n_rows, n_ids) == (6_000, 6_000)  # ArrowStream inserts
    assert_totals_equal(stored_totals(server_store), ground_truth(events))
    # Native inserts (client.insert, lz4-compressed request bodies): the dead letters and releases.
    errors = client.query(f"SELECT kafka_offset, stage, reason FROM {db}.ingestion_errors FINAL ORDER BY 1")
    assert errors.result_rows == [(60, "decode", "bad_json"), (61, "decode", "unknown_type")]
    released = datetime(2026, 11, 30, 12, 0, 0, 123000, tzinfo=UTC)
    sink = ClickHouseSink(client, db)
    sink.write_releases([Release(product="search", version="2.1.0", released_at=released, rollout_pct=25.0)])
    rows = client.query(f"SELECT product, version, released_at, rollout_pct FROM {db}.releases FINAL").result_rows
    assert rows == [("search", "2.1.0", released.replace(tzinfo=None), 25.0)]


def test_a_replayed_batch_stores_nothing_twice_after_a_takeover_over_http(server_store, client):
    """The takeover's DELETE and bound-parameter query run over HTTP, so a replay after a crash adds nothing."""
    events = make_events(2_000, PRODUCTS, seed=72)
    assert ingest(server_store, client, packs(events)) == []
    assert ingest(server_store, client, packs(events)) == []  # a fresh Ingestor: takes partition 0 over again
    db = server_store.clickhouse_database
    assert client.query(f"SELECT count() FROM {db}.events FINAL").result_rows[0][0] == 2_000
    assert_totals_equal(stored_totals(server_store), ground_truth(events))


class SpoilingClient:
    """The real HTTP client, except that one event's id is made unparseable in the Arrow block it sends."""

    def __init__(self, client: Client, event_id: str) -> None:
        self.client = client
        self.event_id = event_id

    def raw_insert(self, table: str, insert_block: bytes, **kw: Any) -> Any:
        if self.event_id.encode() in insert_block:
            block = pa.ipc.open_stream(insert_block).read_all()
            ids = [("not a uuid " + i) if i == self.event_id else i for i in block.column("event_id").to_pylist()]
            block = block.set_column(block.schema.get_field_index("event_id"), "event_id", pa.array(ids, pa.string()))
            out = pa.BufferOutputStream()
            with pa.ipc.new_stream(out, block.schema) as writer:
                writer.write_table(block)
            insert_block = out.getvalue().to_pybytes()
        return self.client.raw_insert(table, insert_block=insert_block, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_row_the_server_refuses_is_dead_lettered_and_the_rest_lands(server_store, client):
    events = make_events(3_000, PRODUCTS, seed=73)
    victim = events[1_234]
    dead = ingest(server_store, SpoilingClient(client, victim["event_id"]), packs(events))

    assert [(d.error.reason, d.message.offset, d.index) for d in dead] == [("rejected_by_store", 12, 34)]
    assert "Code: 376" in dead[0].error.detail and "CANNOT_PARSE_UUID" in dead[0].error.detail  # the server's words
    db = server_store.clickhouse_database
    assert client.query(f"SELECT count() FROM {db}.events FINAL").result_rows[0][0] == 2_999
    assert_totals_equal(stored_totals(server_store), ground_truth([e for e in events if e is not victim]))


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])  # deflate: the client cannot write it
def test_every_request_compression_the_client_offers_lands_the_same(clickhouse_server, server_store, compress):
    """clickhouse-connect compresses Native inserts and asks for compressed answers; each method it has."""
    c = clickhouse_connect.get_client(dsn=clickhouse_server.dsn(), compress=compress)
    try:
        schema.migrate(c, server_store)
        db = server_store.clickhouse_database
        rows = [["events", 0, i, 0, "decode", "bad_json", f"detail {i} é", "{" * (i % 50), datetime.now(UTC)]
                for i in range(500)]  # fmt: skip
        cols = ["kafka_topic", "kafka_partition", "kafka_offset", "pack_index", "stage", "reason", "detail",
                "payload", "at"]  # fmt: skip
        c.insert(f"{db}.ingestion_errors", rows, column_names=cols)
        got = c.query(f"SELECT kafka_offset, detail, payload FROM {db}.ingestion_errors ORDER BY kafka_offset")
        assert got.result_rows == [(i, f"detail {i} é", "{" * (i % 50)) for i in range(500)]
    finally:
        c.close()


# --- reads --------------------------------------------------------------------------------------------


def test_catalog_queries_bind_their_parameters_over_http(server_store, client):
    events = make_events(3_000, PRODUCTS, seed=74)
    assert ingest(server_store, client, packs(events)) == []
    truth = ground_truth(events)
    since = datetime.now(UTC) - timedelta(hours=2)
    db = server_store.clickhouse_database
    columns, rows = catalog.query(client, db, ["events", "requests"], since)
    assert columns == ["product", "events", "requests"]
    assert {r[0]: (r[1], r[2]) for r in rows} == {p: (t["events"], t.get("requests", 0)) for p, t in truth.items()}
    _, one = catalog.query(client, db, ["events"], since, product="search")
    assert one == [("search", truth["search"]["events"])]
    # A bound value is data, never SQL: a quote in it matches nothing instead of widening the query.
    _, none = catalog.query(client, db, ["events"], since, product="search' OR '1'='1")
    assert none == []


def test_result_formats_the_client_asks_for(client, server_store):
    db = server_store.clickhouse_database
    client.insert(f"{db}.releases", [["p", "1.0", datetime(2026, 1, 2, tzinfo=UTC), "stable", 50.0, "abc"]],
                  column_names=["product", "version", "released_at", "channel", "rollout_pct", "commit"])  # fmt: skip
    native = client.query(f"SELECT product, rollout_pct FROM {db}.releases")  # FORMAT Native
    assert native.result_rows == [("p", 50.0)]
    arrow = client.query_arrow(f"SELECT product, rollout_pct FROM {db}.releases")  # FORMAT Arrow
    assert arrow.to_pylist() == [{"product": "p", "rollout_pct": 50.0}]
    raw = client.raw_query(f"SELECT product FROM {db}.releases", fmt="RowBinaryWithNamesAndTypes")
    assert raw == b"\x01\x07product\x16LowCardinality(String)\x01p"
    assert client.command(f"SELECT count() FROM {db}.releases") == 1
    assert client.command(f"SELECT product FROM {db}.releases WHERE product = 'none'") == ""  # a result, empty


def test_the_leaders_jobs_and_the_read_api_answer_over_http_as_embedded(server_store, client, embedded, tmp_path):
    """The alert evaluator, the health job's scorecards and verdicts, and every read: the same answers either way."""
    events = make_events(4_000, PRODUCTS, seed=75, spread_s=3_600)
    in_process = Settings(data_dir=tmp_path / "embedded", clickhouse_database=server_store.clickhouse_database)
    schema.migrate(embedded, in_process)
    assert ingest(server_store, client, packs(events)) == []
    assert ingest(in_process, embedded, packs(events)) == []
    at = datetime.now(UTC).replace(microsecond=0)

    def answers(c: Client, settings: Settings) -> str:
        evaluator = build_evaluator(settings)
        try:
            report = evaluator.evaluate(c, at).to_json()
        finally:
            evaluator.close()
        assert report["groups"] and not report["errors"], report
        params = {"at": at.isoformat()}
        metrics = {"names": "events,requests,crash_free_sessions,active_users,nps", "since": "1d", "step": "15m"}
        got = {
            "evaluation": report,
            "status": reads.alerts_status(c, settings, {}),
            "metrics": reads.metrics_query(c, settings, metrics),
            "scorecards": reads.scorecard(c, settings, params),
            "verdicts": reads.release_verdicts(c, settings, params),
        }
        return json.dumps(got, sort_keys=True, default=str)  # NaN compares equal as text

    assert answers(client, server_store) == answers(embedded, in_process)


# --- sessions and settings -------------------------------------------------------------------------


def _setting(c: Client, name: str, **kw: Any) -> str:
    return str(c.query("SELECT value FROM system.settings WHERE name = {n:String}", parameters={"n": name}, **kw)
               .result_rows[0][0])  # fmt: skip


def test_session_settings_last_and_query_settings_do_not(clickhouse_server):
    a = clickhouse_connect.get_client(dsn=clickhouse_server.dsn(), settings={"max_block_size": 4321})
    b = clickhouse_connect.get_client(dsn=clickhouse_server.dsn())
    try:
        assert _setting(a, "max_block_size") == "4321", "client settings ride every request"
        assert _setting(b, "max_block_size") != "4321"
        assert _setting(a, "max_threads", settings={"max_threads": 1}) == "1"
        assert _setting(a, "max_threads") != "1", "a query's settings end with it"
        a.command("SET max_threads = 1")
        assert _setting(a, "max_threads") == "1", "a SET lasts for the session"
        assert _setting(b, "max_threads") != "1", "and is the session's alone"
        with pytest.raises(DatabaseError) as caught:
            a.query("SELECT 1", settings={"no_such_setting": 1})
        assert caught.value.code == 115  # UNKNOWN_SETTING, from the server
    finally:
        a.close()
        b.close()


def test_two_clients_on_one_session_get_session_is_locked(clickhouse_server):
    """A server runs one query at a time per session; the second gets SESSION_IS_LOCKED, a transient failure."""
    session = "shared-session-test"
    a = clickhouse_connect.get_client(dsn=clickhouse_server.dsn(), session_id=session)
    b = clickhouse_connect.get_client(dsn=clickhouse_server.dsn(), session_id=session)
    try:
        slow = threading.Thread(target=lambda: a.query("SELECT sleep(2)"))
        slow.start()
        threading.Event().wait(0.7)
        err = _error(b, "SELECT 1")
        slow.join()
        assert isinstance(err, DatabaseError) and err.code == 373
        assert classify(err) == "transient", "a busy session frees itself: retry, as for a timeout"
        assert b.query("SELECT 1").result_rows == [(1,)]
    finally:
        a.close()
        b.close()


# --- failures and their classes ----------------------------------------------------------------------

# (the failure, a statement that makes the engine fail so, its error code, the class the worker gives it)
ENGINE_FAILURES = [
    ("refused value", "SELECT toUUID('not a uuid')", 376, "rejected"),
    ("value out of range", "SELECT accurateCast(300, 'UInt8')", 70, "rejected"),
    ("unparseable number", "SELECT toInt32('abc')", 6, "rejected"),
    ("server-side timeout", "SELECT sleep(1) FROM numbers(3) SETTINGS max_block_size = 1, max_execution_time = 0.5",
     159, "transient"),
    ("memory limit", "SELECT groupArray(number) FROM numbers(10000000) SETTINGS max_memory_usage = 1000000",
     241, "transient"),
    ("unknown table", "SELECT * FROM system.nothing", 60, "unknown"),
    ("syntax error", "SELEC 1", 62, "unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "sql", "code", "kind"), ENGINE_FAILURES, ids=[f[0] for f in ENGINE_FAILURES])
def test_engine_errors_over_http_classify_as_embedded(client, embedded, what, sql, code, kind):
    over_http, in_process = _error(client, sql), _error(embedded, sql)
    assert isinstance(over_http, DatabaseError), what
    assert (over_http.code, classify(over_http)) == (code, kind)
    assert (getattr(in_process, "code", None), classify(in_process)) == (code, kind), "the embedded engine agrees"
    assert f"Code: {code}. DB::Exception:" in str(over_http)


def test_a_client_timeout_is_transient(clickhouse_server):
    c = clickhouse_connect.get_client(dsn=clickhouse_server.dsn(), send_receive_timeout=1)
    try:
        err = _error(c, "SELECT sleep(2)")
        assert isinstance(err, OperationalError) and "timed out" in str(err).lower()
        assert classify(err) == "transient"
    finally:
        c.close()


def test_a_refused_connection_is_transient_and_the_client_recovers(tmp_path):
    """The server goes away under a connected client (connection refused), then comes back on its port."""
    server = ChServer(tmp_path / "own-server", tmp_path / "own-server.log").start(port=free_port())
    settings = Settings(data_dir=tmp_path, clickhouse_dsn=server.dsn(), clickhouse_database="pulse")
    try:
        schema.migrate_store(settings)
        c = clickhouse.connect(settings)
        server.stop()
        with pytest.raises(Exception) as caught:
            ClickHouseSink(c, settings.clickhouse_database).write_releases(
                [Release(product="p", version="1", released_at=datetime.now(UTC))]
            )
        assert isinstance(caught.value, OperationalError) and "refused" in str(caught.value).lower()
        assert classify(caught.value) == "transient"
        server.start()  # the same port and folder: a server that restarted
        ClickHouseSink(c, settings.clickhouse_database).write_releases(
            [Release(product="p", version="1", released_at=datetime.now(UTC))]
        )
        assert c.command(f"SELECT count() FROM {settings.clickhouse_database}.releases") == 1
        c.close()
    finally:
        server.stop()
    never = Settings(data_dir=tmp_path, clickhouse_dsn=f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(OperationalError) as caught:
        clickhouse.connect(never)
    assert classify(caught.value) == "transient"


def test_wrong_credentials_are_refused_as_a_server_refuses_them(clickhouse_server):
    with pytest.raises(DatabaseError) as caught:
        clickhouse_connect.get_client(dsn=f"http://pulse:wrong@127.0.0.1:{clickhouse_server.port}/")
    assert caught.value.code == 516 and "AUTHENTICATION_FAILED" in str(caught.value)
