"""The ingest path as one chain - fetch -> decode -> aggregate -> write -> commit - and its durable-step runner.

:class:`IngestLoop` runs the events topic: it *fetches* a batch of chunks
from the consumer (:meth:`~consumers.batching.Batches.take`), *decodes* it in
the decode process (:mod:`consumers.decode_process`) one batch ahead of the
one being stored, hands it to :meth:`consumers.ingest.Ingestor.process`, which
*aggregates* it and *writes* it to ClickHouse, and then *commits* it: acks its
offsets, which Faust's commit loop commits. :class:`ReleaseLoop` does the same
for the releases topic, without the decode process.

Both make a batch durable through :func:`run_durably`, the one place that
decides whether a batch is acked:

* the step completes: the batch is acked;
* the step abandons the batch (:class:`~consumers.ingest.BatchAbandoned`: a
  rebalance moved its partitions): it is not acked, its next owner replays it;
* the worker is stopping (SIGTERM cancels the loop): the step may finish within
  ``shutdown_grace_s`` - then it is acked, so the final commit includes it -
  or it is abandoned unacked;
* anything else (a store failure past its bound, a bug): the process ends at
  once with exit code 70, acking nothing; a supervisor restarts it and the
  batch replays exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor

from faust.types import TP

from consumers import decode_process
from consumers.batching import PACK_EVENTS, Batches, Chunk
from consumers.decode import DecodedBatch
from consumers.faust_adapter import PulseApp
from consumers.ingest import BatchAbandoned, Ingestor
from consumers.records import Message
from pipeline import telemetry
from pipeline.settings import Settings

log = logging.getLogger(__name__)

EXIT_CRASHED = 70  # EX_SOFTWARE: a failed batch or a bug ends the worker unacked
RELEASE_BATCH = 100  # release announcements per durable batch
REVOKE_DRAIN_S = 30.0  # the longest a revocation waits for the write in progress

Step = Callable[[list[Message]], Awaitable[object]]


async def run_durably(
    step: Step, chunks: Sequence[Chunk], grace_s: float, ack: Callable[[Sequence[Chunk]], None]
) -> None:
    """Run ``step`` over the messages of ``chunks``; ``ack`` them only if it completed (see the module docstring)."""
    messages = [m for chunk in chunks for m in chunk.messages]
    task = asyncio.ensure_future(step(messages))
    try:
        await asyncio.shield(task)
    except BatchAbandoned as exc:
        log.warning("event=batch_abandoned reason=%r messages=%d", str(exc), len(messages))
        return
    except asyncio.CancelledError:
        if await _finish_within(task, grace_s):
            ack(chunks)
        else:
            log.warning("event=batch_abandoned reason=shutdown messages=%d", len(messages))
        raise
    except BaseException:
        log.exception("event=ingest_crashed messages=%d", len(messages))
        _crash()
    ack(chunks)


async def _finish_within(task: asyncio.Future[object], grace_s: float) -> bool:
    """Whether ``task`` completed successfully within ``grace_s`` (it is cancelled if not)."""
    with contextlib.suppress(asyncio.CancelledError):  # stopped again while waiting: give up at once
        await asyncio.wait({task}, timeout=grace_s)
    if task.done() and not task.cancelled() and task.exception() is None:
        return True
    task.cancel()
    return False


def _crash() -> None:
    """End the process now, acking nothing (no Faust shutdown: it would commit what was acked since)."""
    logging.shutdown()
    os._exit(EXIT_CRASHED)


class IngestLoop:
    """The events topic, batch after batch: fetch, decode (one batch ahead), aggregate and write, commit."""

    def __init__(
        self, app: PulseApp, batches: Batches, ingestor: Ingestor, decoder: Executor, settings: Settings
    ) -> None:
        self.app = app
        self.batches = batches
        self.ingestor = ingestor
        self.decoder = decoder
        self.settings = settings
        self.batch_events = settings.batch_max_messages * PACK_EVENTS  # a pack counts as its lines
        self._ready: asyncio.Queue[tuple[list[Chunk], DecodedBatch]] | None = None

    async def run(self) -> None:
        """Store batches in order while the next one is fetched and decoded; returns only when cancelled."""
        _tune_gc()
        self._ready = asyncio.Queue(maxsize=1)
        prefetching = asyncio.ensure_future(self._prefetch(self._ready))
        try:
            while True:
                chunks, decoded = await self._ready.get()
                self._ready.task_done()
                if self.batches.stale(chunks, self.app.generation()):
                    continue  # fetched before a rebalance: Faust re-reads them from the committed offsets
                store = functools.partial(self.ingestor.process, decoded=decoded)
                await run_durably(store, chunks, self.settings.shutdown_grace_s, self.commit)
        finally:
            prefetching.cancel()

    async def _prefetch(self, ready: asyncio.Queue[tuple[list[Chunk], DecodedBatch]]) -> None:
        """Fetch and decode the next batch while the current one is stored: one batch ahead at most."""
        try:
            while True:
                chunks = await self.fetch()
                if chunks:
                    await ready.put((chunks, await self.decode(chunks)))
                    await ready.join()  # the next fetch waits until this batch is taken
        except asyncio.CancelledError:
            raise
        except BaseException:  # a bug in decoding: end the process unacked, like a failing batch
            log.exception("event=decode_crashed")
            _crash()

    async def fetch(self) -> list[Chunk]:
        """The next batch: up to ``batch_max_messages`` packs' worth of events, within ``batch_within_s``."""
        return await self.batches.take(self.batch_events, self.settings.batch_within_s, self.app.generation)

    async def decode(self, chunks: Sequence[Chunk]) -> DecodedBatch:
        """Decode and validate a batch in the decode process (stage one; see :mod:`consumers.decode`)."""
        messages = [m for chunk in chunks for m in chunk.messages]
        return await decode_process.decode(
            self.decoder, messages, self.settings.max_event_bytes, self.settings.events_topic, self.ingestor.pii
        )

    def commit(self, chunks: Sequence[Chunk]) -> None:
        """Ack a durable batch (Faust commits acked offsets) and report each partition's lag."""
        self.app.ack(chunks)
        done: dict[TP, int] = {}
        for chunk in chunks:
            done[chunk.tp] = max(done.get(chunk.tp, -1), chunk.messages[-1].offset)
        for tp, offset in done.items():
            highwater = self.app.highwater(tp)
            if highwater is not None:
                telemetry.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))

    async def on_revoked(self, app: object, revoked: object, **kwargs: object) -> None:
        """A rebalance began: fence the batch in flight, drop what is buffered, let the write in progress land."""
        self.ingestor.revoke_all()
        for batches in self.app.batch_routes.values():
            batches.clear()
        # Kafka hands the partitions on only after this returns: let the write in progress land first.
        if not await self.ingestor.sink.drain(REVOKE_DRAIN_S):
            log.warning("event=revoke_drain_timeout seconds=%.0f", REVOKE_DRAIN_S)


class ReleaseLoop:
    """The releases topic, batch after batch: fetch, store, commit."""

    def __init__(self, app: PulseApp, batches: Batches, ingestor: Ingestor, settings: Settings) -> None:
        self.app = app
        self.batches = batches
        self.ingestor = ingestor
        self.settings = settings

    async def run(self) -> None:
        while True:
            chunks = await self.batches.take(RELEASE_BATCH, self.settings.batch_within_s, self.app.generation)
            if chunks and not self.batches.stale(chunks, self.app.generation()):
                await run_durably(self.ingestor.process_releases, chunks, self.settings.shutdown_grace_s, self.app.ack)


def _tune_gc() -> None:
    """Keep the cyclic GC from re-scanning the heap several times per batch.

    A batch keeps ~50k decoded events alive until it is stored; with the
    default thresholds (a young collection every 700 allocations) the
    collector walked them again and again, and older generations with them.
    Everything alive once the worker runs (Faust, the engine's bindings,
    modules) is frozen out of collection, and collections run every 50k
    allocations (full ones every 5M).
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)
