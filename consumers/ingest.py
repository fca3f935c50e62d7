"""The ingest step: one batch of Kafka messages made durable, in a fixed order.

:meth:`Ingestor.process` is the only place that decides when a batch is safe
to commit. Its caller (the Faust agent) acks the batch's messages only after
``process`` returned, and Faust commits only acked offsets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from pydantic import ValidationError

from consumers.aggregate import BatchResult, DeadLetter, Message, SeenIds, Watermarks, aggregate_batch
from consumers.sink import ClickHouseSink
from pipeline import telemetry as m
from pipeline.events import RELEASE_ADAPTER, DecodeError, Release, describe_errors
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DeadLetterSender = Callable[[Sequence[DeadLetter]], Awaitable[None]]


class Ingestor:
    """Turns batches of messages into durable rows; holds per-partition state."""

    def __init__(self, settings: Settings, sink: ClickHouseSink, send_dead: DeadLetterSender) -> None:
        self.settings = settings
        self.sink = sink
        self.send_dead = send_dead
        self.seen = SeenIds(settings.dedup_window)
        self.watermarks = Watermarks(settings.allowed_lateness_s)
        self.owned: set[int] = set()

    def revoke_all(self) -> None:
        """A rebalance began: every partition is taken over afresh on its next batch."""
        self.owned.clear()

    async def process(self, messages: Sequence[Message]) -> BatchResult:
        """Make one batch durable. The steps, in order:

        1. take over partitions new to this worker: delete their partials written
           past the offset we resume from, and warm the dedup memory;
        2. aggregate (decode, validate, dedup, minute partials) - pure, no I/O;
        3. insert raw rows into ``events``;
        4. insert dead letters into ``ingestion_errors``;
        5. insert minute partials into ``product_metrics_1m``;
        6. produce dead letters to the DLQ topic and wait for the broker's acks;
        7. return - only now may the caller ack, so offsets are committed after
           ClickHouse accepted every row of the batch.

        A crash anywhere before 7 replays the batch from its first offset:
        raw rows collapse on event_id, partial keys are rewritten or rolled back
        by step 1, so nothing is lost and nothing counted twice. A failing
        ClickHouse or broker is retried with backoff until it recovers; the
        batch is never skipped.
        """
        started = time.perf_counter()
        first_offsets: dict[int, int] = {}
        for msg in messages:
            first_offsets.setdefault(msg.partition, msg.offset)
        for partition, offset in first_offsets.items():
            if partition not in self.owned:
                await self._retry(
                    "take_over", self.sink.take_over, partition, offset, self.seen, self.settings.dedup_window
                )
                self.owned.add(partition)

        batch = aggregate_batch(
            messages,
            self.seen,
            self.watermarks,
            now_s=time.time(),
            max_event_bytes=self.settings.max_event_bytes,
            max_future_skew_s=self.settings.max_future_skew_s,
            max_age_s=self.settings.max_event_age_s,
        )
        t_agg = time.perf_counter()
        await self._retry("raw", self.sink.write_raw, batch.raw_rows)
        await self._retry("errors", self.sink.write_errors, batch, self.settings.events_topic)
        await self._retry("partials", self.sink.write_partials, batch)
        t_ch = time.perf_counter()
        if batch.dead:
            await self._retry_async("dlq", self.send_dead, batch.dead)
        self._observe(messages, batch, started, t_agg, t_ch)
        return batch

    async def process_releases(self, messages: Sequence[Message]) -> None:
        """Store release announcements; bad ones are dead-lettered like bad events."""
        releases: list[Release] = []
        dead: list[DeadLetter] = []
        for msg in messages:
            try:
                releases.append(RELEASE_ADAPTER.validate_json(msg.value or b""))
            except ValidationError as exc:
                dead.append(DeadLetter(msg, 0, msg.value, DecodeError("invalid", describe_errors(exc))))
        await self._retry("releases", self.sink.write_releases, releases)
        if dead:
            await self._retry_async("dlq", self.send_dead, dead)
        log.info("event=releases_durable releases=%d dead=%d", len(releases), len(dead))

    async def _retry(self, stage: str, fn: Callable[..., object], *args: object) -> None:
        await self._retry_async(stage, lambda *a: self.sink.run(fn, *a), *args)

    async def _retry_async(self, stage: str, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        delay = 0.2
        while True:
            try:
                await fn(*args)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is retried, never skipped
                m.SINK_RETRIES.inc()
                log.warning("event=sink_retry stage=%s error=%r retry_in_s=%.1f", stage, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _observe(self, messages: Sequence[Message], batch: BatchResult, t0: float, t_agg: float, t_ch: float) -> None:
        done = time.perf_counter()
        m.BATCH_SIZE.observe(len(messages))
        m.BATCH_SECONDS.labels("aggregate").observe(t_agg - t0)
        m.BATCH_SECONDS.labels("clickhouse").observe(t_ch - t_agg)
        m.BATCH_SECONDS.labels("total").observe(done - t0)
        for product, n in batch.products.items():
            m.EVENTS_INGESTED.labels(product).inc(n)
        for dead in batch.dead:
            m.EVENTS_DEAD_LETTERED.labels(dead.error.reason).inc()
        m.EVENTS_DUPLICATE.inc(batch.duplicates)
        m.LATE_EVENTS.inc(batch.late)
        if self.watermarks.max_ts:
            m.WATERMARK_LAG.set(time.time() - max(self.watermarks.max_ts.values()))
        log.info(
            "event=batch_durable messages=%d rows=%d partials=%d dead=%d duplicates=%d late=%d seconds=%.3f pid=%d",
            len(messages),
            len(batch.raw_rows),
            len(batch.partials),
            len(batch.dead),
            batch.duplicates,
            batch.late,
            done - t0,
            os.getpid(),
        )
