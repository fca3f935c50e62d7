"""The Faust app "pulse": the ingest agent and the worker that runs it.

One agent consumes the events topic in batches with concurrency 1 - scale
with partitions and worker processes, never with agent concurrency, which
reorders events and can commit past unprocessed ones. The consumer hands the
topic's records over per fetch, not per message (:mod:`consumers.batching`:
Faust's per-message costs capped single-event messages at a few thousand per
second), and a batch holds up to ``batch_max_messages`` packs' worth of events
(``batch_max_messages * 100`` lone events). Each batch goes through
:meth:`consumers.ingest.Ingestor.process`; the agent acks the batch only after
it returned, so offsets are committed after ClickHouse holds the rows. An
unexpected error ends the process without acking: a supervisor restarts it and
the batch replays exactly.

Other rooms add leader-only timers and read-only pages through
:mod:`consumers.extensions` (:mod:`pipeline.usecases.worker` hands in the
alert evaluator, the dashboards and the read API), so this module knows nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import faust
from faust.types import TP

from consumers import decoding
from consumers.aggregate import DeadLetter, DecodedBatch, Message
from consumers.allocators import lean_allocators
from consumers.batching import PACK_EVENTS, Batches, BatchingConsumer, Chunk, PulseApp
from consumers.extensions import LeaderTimer, Page, Reply
from consumers.ingest import BatchAbandoned, Ingestor
from consumers.sink import ClickHouseSink
from pipeline import clickhouse, telemetry
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.config import faust_broker_config
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DLQ_MAX_VALUE_BYTES = 512 * 1024  # a dead letter's bytes beyond this are cut (header error.truncated_from)
REVOKE_DRAIN_S = 30.0  # the longest a revocation waits for the write in progress


def create_app(
    settings: Settings, sink: ClickHouseSink, timers: Sequence[LeaderTimer] = (), pages: Sequence[Page] = ()
) -> faust.App:
    """Build the Faust app: the ingest and release agents writing through ``sink``, timers and pages."""
    datadir = settings.data_dir / "faust"
    batch_events = settings.batch_max_messages * PACK_EVENTS
    app = PulseApp(
        settings.consumer_group,
        datadir=str(datadir),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_buffer_maxsize=max(settings.batch_max_messages * 2, 4096),
        broker_max_poll_records=1000,  # records per fetch hand-over: 20 per batch of lone events, ~35 MB of packs
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_interval=1.0,
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.metrics_host,
        web_host="127.0.0.1" if settings.metrics_host in ("0.0.0.0", "::") else settings.metrics_host,
        **faust_broker_config(settings),
    )
    events_topic = app.topic(settings.events_topic, value_type=bytes, key_type=bytes, internal=False)
    releases_topic = app.topic(settings.releases_topic, value_type=bytes, key_type=bytes, internal=False)
    dlq_topic = app.topic(settings.dlq_topic, value_type=bytes, key_type=bytes, internal=False)

    def owns(partition: int) -> bool:
        return TP(settings.events_topic, partition) in app.consumer.assignment()

    ingestor = Ingestor(settings, sink, _dlq_sender(dlq_topic, settings.events_topic), owns)
    batches = app.batches = Batches({settings.events_topic}, max_buffered_events=batch_events)
    # Iterating a topic is how Faust learns to subscribe to it (and to commit its acked offsets); its
    # records then arrive through `batches`, never through this channel.
    aiter(events_topic)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(app: faust.App, revoked: object, **kwargs: object) -> None:  # type: ignore[misc]
        ingestor.revoke_all()
        batches.clear()
        # Kafka hands the partitions on only after this returns: let the write in progress land first.
        if not await sink.drain(REVOKE_DRAIN_S):
            log.warning("event=revoke_drain_timeout seconds=%.0f", REVOKE_DRAIN_S)

    decoder = decoding.decoder(settings.decode_process)

    @app.agent(app.channel(), concurrency=1, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:  # its stream stays empty: batches come from `batches`
        """Take batches, decode the next one (see consumers.decoding) while this one is stored, store them in order."""
        _tune_gc()
        ready: asyncio.Queue[tuple[list[Chunk], DecodedBatch]] = asyncio.Queue(maxsize=1)

        def generation() -> int:
            return app.consumer_generation_id

        def ack(chunks: Sequence[Chunk]) -> None:
            consumer = app.consumer
            assert isinstance(consumer, BatchingConsumer)
            for chunk in chunks:
                consumer.ack_offsets(chunk.tp, [m.offset for m in chunk.messages])
            _observe_chunk_lag(app, chunks)

        async def prefetch() -> None:
            try:
                while True:
                    chunks = await batches.take(batch_events, settings.batch_within_s, generation)
                    if chunks:
                        messages = [m for chunk in chunks for m in chunk.messages]
                        decoded = await decoding.decode(
                            decoder, messages, settings.max_event_bytes, settings.events_topic
                        )
                        await ready.put((chunks, decoded))
                        await ready.join()  # one batch ahead at most: the next take waits until this one is taken
            except asyncio.CancelledError:
                raise
            except BaseException:  # a bug in decoding: end the process unacked, like a failing batch
                log.exception("event=decode_crashed")
                logging.shutdown()
                os._exit(70)

        fetching = asyncio.ensure_future(prefetch())
        try:
            while True:
                chunks, decoded = await ready.get()
                ready.task_done()
                if any(c.generation != app.consumer_generation_id or c.epoch != batches.epoch for c in chunks):
                    continue  # fetched before a rebalance: Faust re-reads them from the committed offsets
                await _durably_chunks(functools.partial(ingestor.process, decoded=decoded), chunks, settings, ack)
        finally:
            fetching.cancel()

    @app.agent(releases_topic, concurrency=1, name="releases")
    async def releases(stream: faust.StreamT[bytes]) -> None:
        batches = stream.take_events(100, within=settings.batch_within_s)  # type: ignore[attr-defined]
        async for events in batches:
            await _durably(ingestor.process_releases, events, settings)

    for timer in timers:
        _schedule(app, sink, timer)
    for page in pages:
        _mount(app, sink, page)
    return app


def _schedule(app: faust.App, sink: ClickHouseSink, timer: LeaderTimer) -> None:
    async def tick() -> None:
        started = time.monotonic()
        try:
            await sink.run(timer.run, sink.client)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failing timer is logged and counted by its owner; ingestion goes on
            log.exception("event=timer_failed timer=%s", timer.name)
        else:
            log.info("event=timer_done timer=%s seconds=%.3f", timer.name, time.monotonic() - started)

    app.timer(timer.interval_s, on_leader=True, name=timer.name)(tick)


def _mount(app: faust.App, sink: ClickHouseSink, page: Page) -> None:
    async def get(view: faust.web.View, request: faust.web.Request, **params: str) -> faust.web.Response:
        try:
            reply = await sink.run(page.render, sink.client, params, dict(request.query))  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - one failing page answers 500, the worker goes on
            log.exception("event=page_failed path=%s", page.path)
            reply = Reply(500, "text/plain; charset=utf-8", f"internal error: {type(exc).__name__}")
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return view.bytes(body, status=reply.status, headers={"Content-Type": reply.content_type})

    get.__name__ = "page_" + "".join(c if c.isalnum() else "_" for c in page.path)
    app.page(page.path, name=get.__name__)(get)


def _tune_gc() -> None:
    """Keep the cyclic GC from re-scanning the heap several times per batch.

    A batch keeps ~50k decoded events alive until it is stored; with the
    default thresholds (a young collection every 700 allocations) the
    collector walked them again and again, and older generations with them,
    which halved throughput. Everything alive once the worker runs (Faust, the
    engine's bindings, modules) is frozen out of collection, and collections
    run every 50k allocations (full ones every 5M).
    """
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def _observe_chunk_lag(app: faust.App, chunks: Sequence[Chunk]) -> None:
    """Per partition: messages behind the high watermark after this batch (0 = caught up)."""
    done: dict[TP, int] = {}
    for chunk in chunks:
        done[chunk.tp] = max(done.get(chunk.tp, -1), chunk.messages[-1].offset)
    for tp, offset in done.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            telemetry.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))


async def _durably_chunks(
    step: Callable[[list[Message]], Awaitable[object]],
    chunks: Sequence[Chunk],
    settings: Settings,
    ack: Callable[[Sequence[Chunk]], None],
) -> None:
    """Run a durable step over a batch of chunks; ``ack`` the batch only if the step completed.

    The rules of :func:`_durably`: a batch abandoned (rebalance) is not acked;
    on shutdown the step may finish within ``shutdown_grace_s`` (then it is
    acked, so the final commit includes it) or is abandoned unacked; a failure
    ends the process at once, acking nothing.
    """
    messages = [m for chunk in chunks for m in chunk.messages]
    task = asyncio.ensure_future(step(messages))
    try:
        await asyncio.shield(task)
    except BatchAbandoned as exc:
        log.warning("event=batch_abandoned reason=%r messages=%d", str(exc), len(messages))
        return
    except asyncio.CancelledError:
        if await _finish_within(task, settings.shutdown_grace_s):
            ack(chunks)
        else:
            log.warning("event=batch_abandoned reason=shutdown messages=%d", len(messages))
        raise
    except BaseException:
        log.exception("event=ingest_crashed messages=%d", len(messages))
        logging.shutdown()
        os._exit(70)
    ack(chunks)


def _message(event: faust.EventT) -> Message:
    m = event.message
    return Message(m.partition, m.offset, m.key, m.value, m.headers)


async def _durably(
    step: Callable[[list[Message]], Awaitable[object]], events: Sequence[faust.EventT], settings: Settings
) -> None:
    """Run a durable step over a batch; the batch is acked (by ``take_events``) only if the step completed.

    * The step completes: return, and ``take_events`` acks the batch.
    * The worker is stopping (SIGTERM cancels the agent): the step may finish
      within ``shutdown_grace_s``; otherwise it is abandoned and its events are
      withheld from acking, so the next owner replays the batch exactly.
    * The step fails (a store failure past its bound, a bug): the process exits
      non-zero at once, acking nothing; a supervisor restarts it.
    """
    task = asyncio.ensure_future(step([_message(e) for e in events]))
    try:
        await asyncio.shield(task)
    except BatchAbandoned as exc:
        _withhold_acks(events)
        log.warning("event=batch_abandoned reason=%r messages=%d", str(exc), len(events))
        return
    except asyncio.CancelledError:
        if not await _finish_within(task, settings.shutdown_grace_s):
            _withhold_acks(events)
            log.warning("event=batch_abandoned reason=shutdown messages=%d", len(events))
        raise
    except BaseException:
        log.exception("event=ingest_crashed messages=%d", len(events))
        logging.shutdown()
        os._exit(70)


async def _finish_within(task: asyncio.Future[object], grace_s: float) -> bool:
    """Whether ``task`` completed successfully within ``grace_s`` (it is cancelled if not)."""
    with contextlib.suppress(asyncio.CancelledError):  # stopped again while waiting: give up at once
        await asyncio.wait({task}, timeout=grace_s)
    if task.done() and not task.cancelled() and task.exception() is None:
        return True
    task.cancel()
    return False


def _withhold_acks(events: Sequence[faust.EventT]) -> None:
    """Make ``take_events``' final ack of these events a no-op, so their offsets are never committed."""
    for event in events:
        event.message.acked = True


def _dlq_sender(topic: faust.TopicT, source_topic: str) -> Callable[[Sequence[DeadLetter]], Awaitable[None]]:
    async def send(dead: Sequence[DeadLetter]) -> None:
        at = datetime.now(UTC).isoformat()
        futures = []
        for d in dead:
            headers = {
                "error.reason": d.error.reason.encode(),
                "error.detail": d.error.detail[:1000].encode(),
                "error.stage": d.error.stage.encode(),
                "error.at": at.encode(),
                "source.topic": source_topic.encode(),
                "source.partition": str(d.message.partition).encode(),
                "source.offset": str(d.message.offset).encode(),
                "source.index": str(d.index).encode(),
            }
            value = d.value or b""
            if len(value) > DLQ_MAX_VALUE_BYTES:  # the producer would refuse it, and the batch could never commit
                headers["error.truncated_from"] = str(len(value)).encode()
                value = value[:DLQ_MAX_VALUE_BYTES]
            futures.append(await topic.send(key=d.message.key, value=value, headers=headers))
        await asyncio.gather(*futures)

    return send


def run_worker(
    settings: Settings,
    timers: Sequence[LeaderTimer] = (),
    pages: Sequence[Page] = (),
    loglevel: str = "info",
    migrations: Sequence[clickhouse.Migration] = clickhouse.MIGRATIONS,
) -> None:
    """Run one worker until SIGTERM/SIGINT: topics, schema, metrics, then the Faust app with timers and pages.

    ``migrations`` is the store's schema (the CLI passes every room's: ``pipeline.usecases.schema.MIGRATIONS``).
    """
    logging.basicConfig(
        level=loglevel.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    lean_allocators()  # before the engine and Faust start their threads
    # Faust creates its data folder without parents; make the whole path in every mode (server DSN included).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days, migrations)
    sink = ClickHouseSink(client, settings.clickhouse_database)
    telemetry.serve_metrics(settings.metrics_port, settings.metrics_host)

    app = create_app(settings, sink, timers, pages)
    log.info(
        "event=worker_start topic=%s group=%s clickhouse=%s pid=%d",
        settings.events_topic,
        settings.consumer_group,
        "embedded" if settings.embedded_clickhouse else "server",
        os.getpid(),
    )
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        sink.close()
