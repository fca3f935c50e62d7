"""The Faust app "pulse": the ingest and release loops, leader timers and pages, and the worker that runs them.

The events topic is consumed in batches by one loop (:class:`consumers.loop.IngestLoop`,
concurrency 1 - scale with partitions and worker processes, never with agent
concurrency, which reorders events and can commit past unprocessed ones). The
consumer hands the topic's records over per fetch, not per message
(:mod:`consumers.faust_adapter`), and a batch holds up to
``batch_max_messages`` packs' worth of events (``batch_max_messages * 100``
lone events). Each batch goes through :meth:`consumers.ingest.Ingestor.process`
and is acked only after it returned, so offsets are committed after ClickHouse
holds the rows. The releases topic takes the same path in smaller batches
(:class:`consumers.loop.ReleaseLoop`). An unexpected error ends the process
without acking: a supervisor restarts it and the batch replays exactly.

Other rooms add leader-only timers and read-only pages through
:mod:`consumers.extensions` (:mod:`pipeline.usecases.worker` hands in the
alert evaluator, the dashboards and the read API), so this module knows nothing of them.
Timers run on a thread and client of their own (:class:`consumers.extensions.LeaderJobs`), pages on a read
pool with a read client of their own (:mod:`consumers.web`), so neither a job nor a read a user triggers
delays ingestion. ``/healthz`` and ``/readyz``
(:mod:`consumers.health`) sit on the same web server, outside the pages' token and Host guard.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlsplit

import faust

from consumers import decode_process, health, web
from consumers.allocators import lean_allocators
from consumers.batching import PACK_EVENTS, Batches
from consumers.extensions import LeaderJobs, LeaderTimer, Page
from consumers.faust_adapter import PulseApp
from consumers.ingest import Ingestor, StepHook
from consumers.loop import RELEASE_BATCH, IngestLoop, ReleaseLoop
from consumers.records import DeadLetter
from consumers.sink import ClickHouseSink
from consumers.web import ReadPool
from pipeline import clickhouse, telemetry
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.config import faust_broker_config
from pipeline.settings import Settings

log = logging.getLogger(__name__)

QUIET_LIBRARIES = ("kafka", "aiokafka")  # kept at INFO or above whatever --loglevel says
DLQ_MAX_VALUE_BYTES = 512 * 1024  # a dead letter's bytes beyond this are cut (header error.truncated_from)


def create_app(
    settings: Settings,
    sink: ClickHouseSink,
    timers: Sequence[LeaderTimer] = (),
    pages: Sequence[Page] = (),
    on_step: StepHook | None = None,
    reads: ReadPool | None = None,
    jobs: LeaderJobs | None = None,
) -> faust.App:
    """Build the Faust app: the ingest and release loops writing through ``sink``, timers and pages.

    Pages run on ``reads`` (required when there are pages), timers on ``jobs`` (required when there are
    timers), never on the sink's thread (:mod:`consumers.web`, :class:`consumers.extensions.LeaderJobs`).
    ``on_step(k)`` is called just before step k of every batch's durable step
    (:meth:`consumers.ingest.Ingestor.process`); the fault tests stop the process there.
    """
    datadir = settings.data_dir / "faust"
    events = Batches({settings.events_topic}, max_buffered_events=settings.batch_max_messages * PACK_EVENTS)
    releases = Batches({settings.releases_topic}, max_buffered_events=RELEASE_BATCH * 10)
    app = PulseApp(
        settings.consumer_group,
        batches=(events, releases),
        datadir=str(datadir),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication or 1,  # run_worker sets it from the broker count
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_buffer_maxsize=max(settings.batch_max_messages * 2, 4096),
        broker_max_poll_records=1000,  # records per fetch hand-over: 20 per batch of lone events, ~35 MB of packs
        consumer_max_fetch_size=8 * 1024 * 1024,
        broker_commit_interval=1.0,
        web_enabled=settings.web_port != 0,
        web_port=settings.web_port or 65535,  # Faust wants a valid port even with its web server off (0)
        web_bind=settings.web_host,
        web_host=urlsplit(settings.web_url).hostname,  # how the server names itself: a wildcard is reached on loopback
        web_router_enabled=False,  # Faust's /router and /table views show topics, groups and table data to anyone
        web_tables_enabled=False,
        **faust_broker_config(settings),
    )
    for name in (settings.events_topic, settings.releases_topic):
        app.subscribe(app.topic(name, value_type=bytes, key_type=bytes, internal=False))
    dlq_topic = app.topic(settings.dlq_topic, value_type=bytes, key_type=bytes, internal=False)

    owns = functools.partial(app.holds, settings.events_topic)
    ingestor = Ingestor(settings, sink, _dlq_sender(dlq_topic, settings.events_topic), owns, on_step)
    ingest = IngestLoop(app, events, ingestor, decode_process.decoder(settings.decode_process), settings)
    app.on_partitions_revoked.connect(ingest.on_revoked)  # type: ignore[arg-type]
    app.run_loop("ingest", ingest.run)
    app.run_loop("releases", ReleaseLoop(app, releases, ingestor, settings).run)

    for timer in timers:
        assert jobs is not None, "timers need the leader jobs' thread"
        _schedule(app, jobs, timer)
    if pages and reads is None:
        raise ValueError("pages need a read pool")
    if settings.web_port:  # the probes' routes, outside the guard (consumers.health says why)
        app.pulse_health = health.worker_health(settings, app)
        health.mount(app, app.pulse_health)
    guard = web.WebGuard(settings)
    for page in pages:
        assert reads is not None
        web.mount(app, reads, guard, page, settings.web_read_timeout_s)
    return app


def _schedule(app: faust.App, jobs: LeaderJobs, timer: LeaderTimer) -> None:
    """Run ``timer`` every interval while this worker leads the group; tell it when a term of leadership starts.

    Faust's ``on_leader=True`` skips the run on other workers but does not say when leadership came back, so the
    tick asks :meth:`faust.App.is_leader` itself: a worker that led, lost the lead (a rebalance) and leads again
    calls ``timer.on_elected`` first, and a job that keeps state in memory (the alert evaluator) reads it again
    instead of acting on what it knew before the other leader's term. Runs of one timer never overlap (each tick
    awaits its run).
    """
    leading = False

    async def tick() -> None:
        nonlocal leading
        if not app.is_leader():
            leading = False
            return
        if not leading and timer.on_elected is not None:
            timer.on_elected()
        leading = True
        started = time.monotonic()
        try:
            await jobs.run(timer.run)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failing timer is logged and counted by its owner; ingestion goes on
            log.exception("event=timer_failed timer=%s", timer.name)
        else:
            log.info("event=timer_done timer=%s seconds=%.3f", timer.name, time.monotonic() - started)

    app.timer(timer.interval_s, name=timer.name)(tick)


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
    on_step: StepHook | None = None,
) -> None:
    """Run one worker until SIGTERM/SIGINT: topics, schema, metrics, then the Faust app with timers and pages.

    ``migrations`` is the store's schema (the worker's use case passes every room's:
    ``pipeline.usecases.schema.MIGRATIONS``; the default is the core's tables alone); ``on_step`` is handed to
    every batch's durable step (fault tests only, see :func:`create_app`).
    """
    logging.basicConfig(
        level=loglevel.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for name in QUIET_LIBRARIES:  # their DEBUG lines dump client configs, SASL password included
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(loglevel.upper())))
    web.check_exposure(settings)  # before anything starts: an exposed port without a token starts nothing
    web.quiet_bad_requests()
    lean_allocators()  # before the engine and Faust start their threads
    # Faust creates its data folder without parents; make the whole path in every mode (server DSN included).
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Faust's own topics (the leader topic) get the replication the broker count calls for, as ours do.
    settings = settings.model_copy(update={"topic_replication": ensure_topics(settings)})
    client = clickhouse.connect(settings)
    clickhouse.migrate(
        client, settings.clickhouse_database, settings.events_ttl_days, migrations, cluster=settings.clickhouse_cluster
    )
    sink = ClickHouseSink(client, settings.clickhouse_database, settings.clickhouse_cluster)
    reads = None
    if pages and settings.web_port:
        limits = web.read_limits(settings.web_read_timeout_s, settings.web_read_max_rows)
        reads = ReadPool(
            clickhouse.connect_another(settings, limits), settings.web_read_threads, settings.web_read_queue
        )
    jobs = LeaderJobs(clickhouse.connect_another(settings)) if timers else None
    telemetry.serve_metrics(settings.metrics_port, settings.metrics_host)

    app = create_app(settings, sink, timers, pages if reads else (), on_step, reads, jobs)
    log.info(
        "event=worker_start topic=%s group=%s clickhouse=%s pid=%d",
        settings.events_topic,
        settings.consumer_group,
        "embedded" if settings.embedded_clickhouse else "server",
        os.getpid(),
    )
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    probes = getattr(app, "pulse_health", None)
    if probes is not None:
        probes.start()
    try:
        worker.execute_from_commandline()
    finally:
        if probes is not None:
            probes.stop()
        if reads is not None:
            reads.close()  # cancels what waits; a read in flight is not waited for
        if jobs is not None:
            jobs.close()
        sink.close()
