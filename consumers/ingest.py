"""The ingest step: one batch of Kafka messages made durable, in a fixed order.

:meth:`Ingestor.process` is the only place that decides when a batch is safe
to commit. Its caller (:func:`consumers.loop.run_durably`) acks the batch's messages only after
``process`` returned, and Faust commits only acked offsets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from pydantic import ValidationError

from consumers.aggregate import BatchResult, aggregate_decoded
from consumers.cardinality import CardinalityCaps
from consumers.decode import DecodedBatch, decode_batch
from consumers.dedup import SeenIds, Watermarks
from consumers.failures import StoreGaveUp, classify
from consumers.records import DeadLetter, Message, Position, Rejection
from consumers.sink import ClickHouseSink
from pipeline import telemetry as m
from pipeline.clickhouse.tokens import dedup_token, offset_ranges
from pipeline.errors import PulseError
from pipeline.events import RELEASE_ADAPTER, Release, describe_errors
from pipeline.pii import pseudonymizer
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DeadLetterSender = Callable[[Sequence[DeadLetter]], Awaitable[None]]
StepHook = Callable[[int], None]  # called with k just before step k of Ingestor.process
T = TypeVar("T")


class BatchAbandoned(PulseError):
    """The batch must not be written further or acked: its partitions moved to another worker."""


class Ingestor:
    """Turns batches of messages into durable rows; holds per-partition state."""

    def __init__(
        self,
        settings: Settings,
        sink: ClickHouseSink,
        send_dead: DeadLetterSender,
        owns: Callable[[int], bool] = lambda partition: True,
        on_step: StepHook | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.send_dead = send_dead
        self.seen = SeenIds(settings.dedup_window)
        self.watermarks = Watermarks(settings.allowed_lateness_s)
        self.caps = CardinalityCaps.from_settings(settings)
        try:  # what the store already holds counts against the caps (a restart agrees with it)
            self.caps.seed(sink.client, sink.db, time.time())
        except Exception as exc:  # noqa: BLE001 - a store without the tables yet: start with an empty memory
            log.warning("event=cardinality_seed_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])
        self.owned: set[int] = set()
        self.owns = owns  # whether the consumer is assigned a partition of the events topic right now
        self.generation = 0  # bumped by every revocation: a batch begun before it writes nothing more
        self.on_step = on_step  # fault tests stop the process here (tests/support/stopping_worker.py)
        self.pii = pseudonymizer(settings.pii_hash_key)  # None: ids are stored as sent

    def revoke_all(self) -> None:
        """A rebalance began: fence the batch in flight, and take every partition over afresh on its next batch."""
        self.owned.clear()
        self.generation += 1

    def _fence(self, generation: int, partitions: Iterable[int]) -> None:
        """Refuse to write for a batch that began before a revocation, or holds a partition no longer assigned."""
        if generation != self.generation:
            raise BatchAbandoned("a rebalance began while the batch was in flight")
        lost = sorted(p for p in partitions if not self.owns(p))
        if lost:
            raise BatchAbandoned(f"partitions {lost} are no longer assigned to this worker")

    def decode(self, messages: Sequence[Message]) -> DecodedBatch:
        """Decode a batch here (what :meth:`process` does when not handed one decoded ahead in the decode process)."""
        return decode_batch(messages, self.settings.max_event_bytes, self.settings.events_topic, self.pii).prepare()

    async def process(self, messages: Sequence[Message], decoded: DecodedBatch | None = None) -> BatchResult:
        """Make one batch durable. The steps, in order:

        1. take over partitions new to this worker: delete their partials written
           past the offset we resume from, and warm the dedup memory;
        2. aggregate (decode, validate, dedup, minute partials) - pure, no I/O;
           the decoding may have been done ahead (``decoded``, from :meth:`decode`
           on the same messages), it does not depend on any state;
        3. insert raw rows into ``events``; rows the store refuses are isolated,
           and the batch is aggregated again without them (they become dead
           letters with reason ``rejected_by_store``), so partials agree with
           the raw rows;
        4. insert dead letters into ``ingestion_errors``;
        5. insert minute partials into ``product_metrics_1m``;
        6. produce dead letters to the DLQ topic and wait for the broker's acks;
        7. return - only now may the caller ack, so offsets are committed after
           ClickHouse accepted every row of the batch.

        Before every write the batch is *fenced*: if a rebalance began since it
        started, or one of its partitions is no longer assigned here, it raises
        :class:`BatchAbandoned` and writes nothing more (the caller withholds its
        acks; the partition's next owner replays it). The revocation handler
        waits for the write in progress to finish, so none lands after the next
        owner's takeover.

        A crash anywhere before 7 replays the batch from its first offset:
        raw rows collapse on event_id, partial keys are rewritten or rolled back
        by step 1, so nothing is lost and nothing counted twice. Failures are
        retried within the bounds of :mod:`consumers.failures`; past them
        :class:`~consumers.failures.StoreGaveUp` is raised and the batch must
        not be acked. ``on_step(k)`` is called just before step k: the fault
        tests stop the process there, to prove that stopping at any step is safe.
        """
        started = time.perf_counter()
        generation = self.generation
        first_offsets: dict[int, int] = {}
        for msg in messages:
            first_offsets.setdefault(msg.partition, msg.offset)
        self._step(1)
        self._fence(generation, first_offsets)
        new = {p: o for p, o in first_offsets.items() if p not in self.owned}
        if new:
            await self._retry("take_over", self.sink.take_over, new, self.seen, self.settings.dedup_window)
            self.owned.update(new)

        self._step(2)
        watermarks_before = dict(self.watermarks.max_ts)
        if decoded is None:
            decoded = self.decode(messages)
        batch = self._aggregate(decoded)
        # Names every insert of this batch, so ClickHouse drops a retry of one that landed (tokens module).
        token = dedup_token(self.settings.events_topic, offset_ranges((msg.partition, msg.offset) for msg in messages))
        t_agg = time.perf_counter()
        self._step(3)
        self._fence(generation, first_offsets)
        rejected = await self._retry("raw", self.sink.write_raw, batch.raw_rows, token)
        if rejected:
            # Aggregate again from the same starting state, leaving the refused rows out of every row.
            self.watermarks.max_ts.clear()
            self.watermarks.max_ts.update(watermarks_before)
            batch = self._aggregate(decoded, rejected)
        self._step(4)
        self._fence(generation, first_offsets)
        await self._retry("errors", self.sink.write_errors, batch, self.settings.events_topic, token)
        self._step(5)
        self._fence(generation, first_offsets)
        await self._retry("partials", self.sink.write_partials, batch, token)
        t_ch = time.perf_counter()
        self._step(6)
        self._fence(generation, first_offsets)
        if batch.dead:
            await self._retry_async("dlq", self.send_dead, batch.dead)
        self._step(7)
        self._observe(messages, batch, started, t_agg, t_ch)
        return batch

    def _aggregate(self, decoded: DecodedBatch, rejected: dict[Position, str] | None = None) -> BatchResult:
        return aggregate_decoded(
            decoded,
            self.seen,
            self.watermarks,
            now_s=time.time(),
            max_future_skew_s=self.settings.max_future_skew_s,
            max_age_s=self.settings.max_event_age_s,
            rejected=rejected,
            caps=self.caps,
        )

    def _step(self, k: int) -> None:
        if self.on_step is not None:
            self.on_step(k)

    async def process_releases(self, messages: Sequence[Message]) -> None:
        """Store release announcements; bad ones are dead-lettered like bad events."""
        releases: list[Release] = []
        dead: list[DeadLetter] = []
        for msg in messages:
            try:
                releases.append(RELEASE_ADAPTER.validate_json(msg.value or b""))
            except ValidationError as exc:
                value = msg.value if self.pii is None else self.pii.payload(msg.value)  # releases name no user; but
                # a bad one may be an event sent to the wrong topic
                key = msg.key if self.pii is None else self.pii.message_key(msg.key)
                dead.append(DeadLetter(msg._replace(key=key), 0, value, Rejection("invalid", describe_errors(exc))))
        ranges = offset_ranges((msg.partition, msg.offset) for msg in messages)
        token = dedup_token(self.settings.releases_topic, ranges) if ranges else None
        await self._retry("releases", self.sink.write_releases, releases, token)
        if dead:
            await self._retry_async("dlq", self.send_dead, dead)
        log.info("event=releases_durable releases=%d dead=%d", len(releases), len(dead))

    async def _retry(self, stage: str, fn: Callable[..., T], *args: object) -> T:
        async def on_store(*a: object) -> T:
            return await self.sink.run(fn, *a)

        return await self._retry_async(stage, on_store, *args)

    async def _retry_async(self, stage: str, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Call ``fn`` until it succeeds, within the bounds of its failure class (see :mod:`consumers.failures`)."""
        delay, attempts = 0.2, 0
        give_up_at = time.monotonic() + self.settings.store_retry_timeout_s
        while True:
            try:
                return await fn(*args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below; nothing is retried without a bound
                kind = classify(exc)
                attempts += 1
                m.SINK_RETRIES.labels(stage, kind).inc()
                if kind == "rejected" or (kind == "unknown" and attempts >= self.settings.store_max_attempts):
                    raise StoreGaveUp(f"{stage}: {kind} failure after {attempts} attempt(s): {exc!r}") from exc
                if time.monotonic() + delay > give_up_at:
                    raise StoreGaveUp(
                        f"{stage}: still failing after {self.settings.store_retry_timeout_s:.0f} s: {exc!r}"
                    ) from exc
                log.warning(
                    "event=store_retry stage=%s class=%s attempt=%d error=%r retry_in_s=%.1f",
                    stage,
                    kind,
                    attempts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _observe(self, messages: Sequence[Message], batch: BatchResult, t0: float, t_agg: float, t_ch: float) -> None:
        done = time.perf_counter()
        m.BATCH_SIZE.observe(len(messages))
        m.BATCH_SECONDS.labels("aggregate").observe(t_agg - t0)
        m.BATCH_SECONDS.labels("clickhouse").observe(t_ch - t_agg)
        m.BATCH_SECONDS.labels("total").observe(done - t0)
        m.EVENTS_CONSUMED.labels(self.settings.events_topic).inc(
            len(batch.raw_rows) + len(batch.dead) + batch.duplicates
        )
        for product, n in batch.products.items():
            m.EVENTS_INGESTED.labels(m.product_label(product)).inc(n)
        now = time.time()
        for partition in {msg.partition for msg in messages}:
            newest = self.watermarks.max_ts.get(partition)
            if newest is not None:
                m.FRESHNESS.observe(max(0.0, now - newest))
        for dead in batch.dead:
            m.EVENTS_DEAD_LETTERED.labels(dead.error.reason).inc()
        m.EVENTS_DUPLICATE.inc(batch.duplicates)
        m.LATE_EVENTS.inc(batch.late)
        if self.watermarks.max_ts:
            m.WATERMARK_LAG.set(time.time() - max(self.watermarks.max_ts.values()))
        log.info(
            "event=batch_durable messages=%d rows=%d partials=%d dead=%d duplicates=%d late=%d seconds=%.3f "
            "aggregate_s=%.3f clickhouse_s=%.3f pid=%d",
            len(messages),
            len(batch.raw_rows),
            len(batch.partial_table),
            len(batch.dead),
            batch.duplicates,
            batch.late,
            done - t0,
            t_agg - t0,
            t_ch - t_agg,
            os.getpid(),
        )
