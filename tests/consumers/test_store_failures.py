"""The durable ingest step against a store that fails: the real chDB engine behind a wrapper that misbehaves.

The wrapper changes what reaches the engine (a row made unparseable, so the
real engine refuses it with its own message) or fails calls before they reach
it (connection resets, stalls, errors nobody classified). No Kafka: the
:class:`~consumers.ingest.Ingestor` is driven directly, as the agent drives it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.truth import ground_truth, make_events

from consumers.failures import StoreGaveUp, classify
from consumers.ingest import BatchAbandoned, Ingestor
from consumers.records import DeadLetter, Message
from consumers.sink import ClickHouseSink
from pipeline import clickhouse
from pipeline.events import PACK_FORMAT, PACK_HEADER
from pipeline.settings import Settings

PRODUCTS = ["checkout", "search", "profile"]
PACK = [(PACK_HEADER, PACK_FORMAT)]


class MisbehavingStore:
    """The real client, except for what the test asks: refuse one event's row, fail or stall some calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.refuse_event: str | None = None
        self.failures: list[BaseException] = []  # raised by the next inserts, one each
        self.stall_s = 0.0
        self.stall_table: str | None = None  # stall only inserts into this table
        self.stalling = threading.Event()  # set while a stalled insert waits
        self.inserts = 0
        self.landed: list[str] = []  # tables whose inserts reached the engine, in order

    def _before_insert(self, table: str) -> None:
        self.inserts += 1
        if self.stall_s and self.stall_table in (None, table.split(".")[-1]):
            self.stalling.set()
            time.sleep(self.stall_s)
            self.stalling.clear()
        if self.failures:
            raise self.failures.pop(0)

    def raw_insert(self, table: str, insert_block: bytes, **kw: Any) -> Any:
        self._before_insert(table)
        if self.refuse_event and self.refuse_event.encode() in insert_block:
            insert_block = _spoil_event_id(insert_block, self.refuse_event)
        result = self.client.raw_insert(table, insert_block=insert_block, **kw)
        self.landed.append(table.split(".")[-1])
        return result

    def insert(self, table: str, *args: Any, **kw: Any) -> Any:
        self._before_insert(table)
        result = self.client.insert(table, *args, **kw)
        self.landed.append(table.split(".")[-1])
        return result

    def __getattr__(self, name: str) -> Any:  # query, command, close: the real client's
        return getattr(self.client, name)


def _spoil_event_id(block: bytes, event_id: str) -> bytes:
    """The Arrow block with ``event_id`` made unparseable as a UUID, so the engine refuses that row."""
    table = pa.ipc.open_stream(block).read_all()
    ids = [("not a uuid " + i) if i == event_id else i for i in table.column("event_id").to_pylist()]
    table = table.set_column(table.schema.get_field_index("event_id"), "event_id", pa.array(ids, pa.string()))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, MisbehavingStore]]:
    settings = Settings(data_dir=tmp_path, store_retry_timeout_s=20, store_max_attempts=3)
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database)
    yield settings, MisbehavingStore(client)
    client.close()
    clickhouse.release(settings)


def packs(events: list[dict[str, Any]], partition: int = 0, per_pack: int = 100) -> list[Message]:
    return [
        Message(partition, i // per_pack, None, b"\n".join(json.dumps(e).encode() for e in events[i : i + per_pack]),
                PACK)
        for i in range(0, len(events), per_pack)
    ]  # fmt: skip


def ingest(settings: Settings, store: MisbehavingStore, messages: Sequence[Message]) -> list[DeadLetter]:
    dead: list[DeadLetter] = []

    async def send(batch: Sequence[DeadLetter]) -> None:
        dead.extend(batch)

    async def run() -> None:
        sink = ClickHouseSink(store, settings.clickhouse_database)  # type: ignore[arg-type]
        await Ingestor(settings, sink, send).process(messages)

    asyncio.run(run())
    return dead


def totals(store: MisbehavingStore) -> tuple[int, dict[str, float]]:
    raw = store.client.query("SELECT count() FROM pulse.events FINAL").result_rows[0][0]
    rows = store.client.query(
        "SELECT product, sum(events), sum(requests) FROM pulse.product_metrics_1m FINAL GROUP BY product"
    ).result_rows
    return raw, {p: (e, r) for p, e, r in rows}


def expected(events: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    truth = ground_truth(events)
    return {p: (t["events"], t.get("requests", 0)) for p, t in truth.items()}


def test_one_refused_row_of_50000_is_dead_lettered_and_the_rest_lands(store):
    settings, client = store
    events = make_events(50_000, PRODUCTS, seed=41)
    victim = events[31_337]
    client.refuse_event = victim["event_id"]
    dead = ingest(settings, client, packs(events))

    assert [(d.error.reason, d.message.offset, d.index) for d in dead] == [("rejected_by_store", 313, 37)]
    assert "Cannot" in dead[0].error.detail or "UUID" in dead[0].error.detail  # the engine's own words
    kept = [e for e in events if e is not victim]
    raw, partials = totals(client)
    assert raw == 49_999
    assert partials == expected(kept), "partials must leave out exactly the refused event"
    stored = client.client.query("SELECT stage, reason, kafka_offset, pack_index FROM pulse.ingestion_errors")
    assert stored.result_rows == [("store", "rejected_by_store", 313, 37)]
    # Ingestion goes on: the next batch lands whole.
    more = make_events(500, PRODUCTS, seed=43)
    assert ingest(settings, client, packs(more, partition=1)) == []
    assert totals(client)[0] == 50_499


def test_transient_failures_are_retried_and_totals_stay_exact(store):
    settings, client = store
    events = make_events(5_000, PRODUCTS, seed=47)
    client.failures = [ConnectionResetError("reset by peer") for _ in range(3)] + [TimeoutError("read timed out")]
    assert ingest(settings, client, packs(events)) == []
    assert client.failures == []
    raw, partials = totals(client)
    assert raw == 5_000 and partials == expected(events)


def test_a_stalling_store_delays_but_loses_nothing(store):
    settings, client = store
    events = make_events(2_000, PRODUCTS, seed=53)
    client.stall_s = 0.5
    assert ingest(settings, client, packs(events)) == []
    raw, partials = totals(client)
    assert raw == 2_000 and partials == expected(events)


def test_an_unclassified_failure_gives_up_after_its_attempts(store):
    settings, client = store
    client.failures = [RuntimeError("something nobody expected") for _ in range(10)]
    with pytest.raises(StoreGaveUp, match="unknown failure after 3 attempt"):
        ingest(settings, client, packs(make_events(300, PRODUCTS, seed=59)))
    assert len(client.failures) == 10 - 3


def test_a_transient_failure_that_lasts_gives_up_after_the_timeout(store):
    settings, client = store
    settings = settings.model_copy(update={"store_retry_timeout_s": 1.0})
    client.failures = [ConnectionRefusedError("refused") for _ in range(100)]
    started = time.monotonic()
    with pytest.raises(StoreGaveUp, match="still failing"):
        ingest(settings, client, packs(make_events(300, PRODUCTS, seed=61)))
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConnectionResetError(), "transient"),
        (TimeoutError(), "transient"),
        (RuntimeError("Code: 252. DB::Exception: Too many parts (300)"), "transient"),
        (RuntimeError("Code: 41. DB::Exception: Cannot read DateTime: (at row 2)"), "rejected"),
        (RuntimeError("Code: 60. DB::Exception: Table pulse.nope does not exist"), "unknown"),
        (RuntimeError("boom"), "unknown"),
    ],
)
def test_failure_classes(exc, kind):
    assert classify(exc) == kind


# --- fencing: a revocation stops the batch in flight, after the write in progress landed --------------------------


def test_a_revocation_during_a_stalled_write_waits_for_it_and_then_fences_the_batch(store):
    settings, client = store
    events = make_events(3_000, PRODUCTS, seed=71)
    client.stall_s, client.stall_table = 2.0, "product_metrics_1m"
    assigned = {0}

    async def run() -> tuple[bool, list[str]]:
        sink = ClickHouseSink(client, settings.clickhouse_database)  # type: ignore[arg-type]
        ingestor = Ingestor(settings, sink, _no_dead_letters, owns=lambda p: p in assigned)
        task = asyncio.ensure_future(ingestor.process(packs(events)))
        while not client.stalling.is_set():  # the partials insert is hanging inside the store call
            await asyncio.sleep(0.01)
        ingestor.revoke_all()  # what the worker's on_partitions_revoked does ...
        assigned.clear()
        drained = await sink.drain(10)  # ... and it returns only once the hanging write is over
        landed_at_drain = list(client.landed)
        with pytest.raises(BatchAbandoned, match="rebalance"):
            await task
        return drained, landed_at_drain

    drained, landed_at_drain = asyncio.run(run())
    assert drained
    assert "product_metrics_1m" in landed_at_drain, "the partition may move on only after the write in progress"
    assert client.landed == landed_at_drain, "nothing is written for the batch after the revocation"


def test_a_batch_whose_partition_is_gone_writes_nothing(store):
    settings, client = store

    async def run() -> None:
        sink = ClickHouseSink(client, settings.clickhouse_database)  # type: ignore[arg-type]
        ingestor = Ingestor(settings, sink, _no_dead_letters, owns=lambda p: p != 3)
        with pytest.raises(BatchAbandoned, match=r"partitions \[3\]"):
            await ingestor.process(packs(make_events(500, PRODUCTS, seed=73), partition=3))

    asyncio.run(run())
    assert client.landed == []
    assert client.client.query("SELECT count() FROM pulse.events").result_rows[0][0] == 0


async def _no_dead_letters(batch: Sequence[DeadLetter]) -> None:
    raise AssertionError(f"unexpected dead letters: {batch[:3]}")
