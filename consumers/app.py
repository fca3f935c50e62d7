"""The Faust app "pulse": the ingest agent and the worker that runs it.

One agent consumes the events topic in batches (``stream.take_events``) with
concurrency 1 - scale with partitions and worker processes, never with agent
concurrency, which reorders events and can commit past unprocessed ones.
Each batch goes through :meth:`consumers.ingest.Ingestor.process`; the agent
acks the batch only after it returned, so offsets are committed after
ClickHouse holds the rows. An unexpected error ends the process without
acking: a supervisor restarts it and the batch replays exactly.

Other rooms add leader-only timers and read-only pages through
:mod:`consumers.extensions` (the CLI hands in the alert evaluator, the
dashboards and the read API), so this module knows nothing of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import faust
from faust.types import TP

from consumers.aggregate import DeadLetter, Message
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
    app = faust.App(
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
        broker_max_poll_records=max(settings.batch_max_messages, 500),
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

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(app: faust.App, revoked: object, **kwargs: object) -> None:  # type: ignore[misc]
        ingestor.revoke_all()
        # Kafka hands the partitions on only after this returns: let the write in progress land first.
        if not await sink.drain(REVOKE_DRAIN_S):
            log.warning("event=revoke_drain_timeout seconds=%.0f", REVOKE_DRAIN_S)

    @app.agent(events_topic, concurrency=1, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        batches = stream.take_events(settings.batch_max_messages, within=settings.batch_within_s)  # type: ignore[attr-defined]
        async for events in batches:
            await _durably(ingestor.process, events, settings)
            _observe_lag(app, events)

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


def _observe_lag(app: faust.App, events: Sequence[faust.EventT]) -> None:
    """Per partition: messages behind the high watermark after this batch (0 = caught up)."""
    done: dict[faust.types.TP, int] = {}
    for event in events:
        tp = event.message.tp
        done[tp] = max(done.get(tp, -1), event.message.offset)
    for tp, offset in done.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            telemetry.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - offset - 1))


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
) -> None:
    """Run one worker until SIGTERM/SIGINT: topics, schema, metrics, then the Faust app with timers and pages."""
    logging.basicConfig(
        level=loglevel.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # Faust creates its data folder without parents; make the whole path in every mode (server DSN included).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days)
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
