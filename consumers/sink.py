"""Make a batch durable in ClickHouse: raw rows, minute partials, ingestion errors.

:class:`ClickHouseSink` owns the process's ClickHouse client and one executor
thread: every ClickHouse call runs off the asyncio loop, so Faust's heartbeats
and rebalances never stall behind an insert. Every insert is one columnar
Arrow block per table per batch (``FORMAT ArrowStream``: the engine reads typed
columns instead of parsing JSON, and Python never serialises a row); the Arrow
blocks are built on the sink's thread too, off the event loop.

Every write takes the ``insert_deduplication_token`` of its batch
(:mod:`pipeline.clickhouse.tokens`), so a retry of an insert that did land is
dropped by the engine where the table keeps a dedup window (the cluster
layout's replicated tables); elsewhere the setting is ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from consumers.aggregate import BatchResult
from consumers.dedup import SeenIds
from consumers.failures import classify
from consumers.partials import BREAKDOWN_COLUMNS, PARTIAL_COLUMNS
from consumers.records import Position
from consumers.rows import RawRows
from pipeline import telemetry
from pipeline.clickhouse.cluster import delete_statement
from pipeline.clickhouse.tokens import part_token
from pipeline.events import MAX_PACK_EVENTS, Release
from pipeline.schema import RAW_COLUMNS

log = logging.getLogger(__name__)
T = TypeVar("T")


PARTIAL_TABLES = ("product_metrics_1m", "breakdown_metrics_1m")
_AT_ROW = re.compile(r"\(at row (\d+)\)")


@contextmanager
def _measured(table: str, rows: int, nbytes: int = 0) -> Iterator[None]:
    """Count and time one insert; a failure is counted by its class and re-raised."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        telemetry.INSERT_ERRORS.labels(table, classify(exc)).inc()
        raise
    telemetry.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
    telemetry.INSERT_ROWS.labels(table).inc(rows)
    if nbytes:
        telemetry.INSERT_BYTES.labels(table).inc(nbytes)


def _failing_row(exc: BaseException, rows: int) -> int:
    """The 1-based row the store says it failed at, or 0 when it does not say (or says nonsense)."""
    match = _AT_ROW.search(str(exc))
    at = int(match.group(1)) if match else 0
    return at if 1 <= at <= rows else 0


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


class ClickHouseSink:
    def __init__(self, client: Client, database: str, cluster: str | None = None) -> None:
        self.client = client
        self.db = database
        self.cluster = cluster  # the cluster layout: takeover deletes from the shards' local tables
        # Renewed by every takeover: partials rolled back then and written again must not be taken for a retry.
        self._term = uuid.uuid4().hex
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")

    def _insert_settings(self, token: str | None) -> dict[str, str | int] | None:
        """The token; on a cluster also a foreground Distributed insert.

        A Distributed insert otherwise returns once the rows are queued on the node that took
        it, and the batch's offsets would be committed before any shard holds them.
        """
        out: dict[str, str | int] = {} if token is None else {"insert_deduplication_token": token}
        if self.cluster is not None:
            out["distributed_foreground_insert"] = 1
        return out or None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking ClickHouse call on the sink's thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until the ClickHouse call in progress (and any queued before now) has finished; False on timeout."""
        try:
            await asyncio.wait_for(self.run(lambda: None), timeout_s)
        except TimeoutError:
            return False
        return True

    # --- writes (blocking; call through run()) ---------------------------------
    def write_raw(self, rows: RawRows, token: str | None = None) -> dict[Position, str]:
        """Insert raw rows; rows the store refuses are isolated and returned with its reason, the rest land.

        A refused insert is split - at the row the store names, else in halves -
        until every refused row stands alone, so one bad row costs a few extra
        inserts and never its neighbours. Transient and unknown failures raise.
        Rows that landed before a failure are harmless when the insert is
        repeated: ``events`` collapses on ``event_id``. A slice of the batch is
        inserted under a token of its own (its rows), so it is not taken for the whole.
        """
        rejected: dict[Position, str] = {}
        pending = [list(range(len(rows)))] if len(rows) else []
        while pending:
            chunk = pending.pop()
            try:
                whole = len(chunk) == len(rows)
                part = token if whole or token is None else part_token(token, f"rows:{chunk[0]}-{chunk[-1]}")
                self._insert_raw(rows if whole else rows.take(chunk), part)
            except Exception as exc:
                if classify(exc) != "rejected":
                    raise
                if len(chunk) == 1:
                    rejected[rows.positions[chunk[0]]] = _first_line(exc)
                    continue
                at = _failing_row(exc, len(chunk))
                parts = (
                    [chunk[at:], chunk[at - 1 : at], chunk[: at - 1]]
                    if at
                    else [chunk[len(chunk) // 2 :], chunk[: len(chunk) // 2]]
                )
                pending.extend(p for p in parts if p)
        if rejected:
            log.warning(
                "event=rows_rejected_by_store table=events rows=%d first=%r",
                len(rejected),
                next(iter(rejected.values())),
            )
        return rejected

    def _insert_raw(self, rows: RawRows, token: str | None = None) -> None:
        self._insert_arrow("events", rows.to_arrow(), RAW_COLUMNS, len(rows), token)

    def write_partials(self, batch: BatchResult, token: str | None = None) -> None:
        """Insert minute partials; their token names the takeover term too (see :meth:`take_over`)."""
        if token is not None:
            token = part_token(token, f"term:{self._term}")
        if len(batch.partial_table):
            table = batch.partial_table
            self._insert_arrow("product_metrics_1m", table.to_arrow(), PARTIAL_COLUMNS, len(table), token)
        if len(batch.breakdown_table):
            table2 = batch.breakdown_table
            self._insert_arrow("breakdown_metrics_1m", table2.to_arrow(), BREAKDOWN_COLUMNS, len(table2), token)

    def _insert_arrow(self, table: str, block: bytes, names: tuple[str, ...], rows: int, token: str | None) -> None:
        with _measured(table, rows, len(block)):
            self.client.raw_insert(
                f"{self.db}.{table}",
                column_names=list(names),
                insert_block=block,
                fmt="ArrowStream",
                settings=self._insert_settings(token),
            )

    def write_errors(self, batch: BatchResult, topic: str, token: str | None = None) -> None:
        if not batch.dead:
            return
        now = datetime.now(UTC)
        rows = [
            [
                topic,
                d.message.partition,
                d.message.offset,
                d.index,
                d.error.stage,
                d.error.reason,
                d.error.detail,
                (d.value or b"")[:4096].decode("utf-8", "replace"),
                now,
            ]
            for d in batch.dead
        ]
        cols = [
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
            "pack_index",
            "stage",
            "reason",
            "detail",
            "payload",
            "at",
        ]
        with _measured("ingestion_errors", len(rows)):
            self.client.insert(
                f"{self.db}.ingestion_errors", rows, column_names=cols, settings=self._insert_settings(token)
            )

    def write_releases(self, releases: list[Release], token: str | None = None) -> None:
        if releases:
            rows = [[r.product, r.version, r.released_at, r.channel, r.rollout_pct, r.commit] for r in releases]
            cols = ["product", "version", "released_at", "channel", "rollout_pct", "commit"]
            self.client.insert(f"{self.db}.releases", rows, column_names=cols, settings=self._insert_settings(token))

    # --- takeover of a partition -------------------------------------------------
    def take_over(self, first_offsets: Mapping[int, int], seen: SeenIds, warm_limit: int) -> None:
        """Roll back uncommitted partials of partitions new to this worker and warm the dedup memory.

        ``first_offsets`` maps each partition to the offset we resume it from.
        Partials whose batch started at or after that offset were written by
        batches that were never committed; they are about to be written again,
        so they go first. Then the ids already stored for each partition are
        loaded so a duplicate of an earlier event is still known. One statement
        per table and one query for all the partitions of a batch.

        A new term begins: the partials about to be written again carry a token
        the rolled-back ones did not, or the engine would drop them as a retry.
        """
        if not first_offsets:
            return
        self._term = uuid.uuid4().hex
        fresh = " OR ".join(
            f"(src_partition = {int(p)} AND batch_start >= {int(o)})" for p, o in sorted(first_offsets.items())
        )
        for table in PARTIAL_TABLES:
            self.client.command(delete_statement(self.db, table, fresh, self.cluster))
        for partition in first_offsets:
            seen.forget(partition)
        if warm_limit > 0:
            rows = self.client.query(
                f"SELECT kafka_partition, event_id, min(kafka_offset * {MAX_PACK_EVENTS} + pack_index) AS o "
                f"FROM {self.db}.events WHERE kafka_partition IN {{ps:Array(UInt16)}} "
                "GROUP BY kafka_partition, event_id "
                "ORDER BY kafka_partition, o DESC LIMIT {n:UInt64} BY kafka_partition",
                parameters={"ps": sorted(first_offsets), "n": warm_limit},
            ).result_columns
            by_partition: dict[int, list[tuple[int, int]]] = {p: [] for p in first_offsets}
            if rows:
                for partition, event_id, position in zip(*rows, strict=True):
                    by_partition[partition].append((event_id.int, position))
            for partition, pairs in by_partition.items():
                seen.remember(partition, reversed(pairs))  # oldest first, as they were stored
        log.info(
            "event=partitions_taken_over partitions=%s dedup_ids=%d",
            ",".join(f"{p}@{o}" for p, o in sorted(first_offsets.items())),
            len(seen),
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.client.close()
