"""``pulse demo``: the whole pipeline on this machine, end to end, on embedded defaults.

1. start the local Kafka unless one is running (and stop it at the end if so);
2. start a worker (a child process) on a fresh embedded ClickHouse under
   ``<data_dir>/demo`` and fresh demo topics;
3. send synthetic traffic - two weeks of event time on a compressed clock,
   with a release that regresses and a product that decays - at ``rate``
   events/s for ``duration_s`` seconds, with a progress bar. The fortnight
   ends at the last UTC midnight (:func:`demo_end`): synthetic traffic follows
   the hour of the UTC day, so a fixed end gives the same data - and the same
   story - at whatever hour the demo runs;
4. wait until the worker has committed everything (so every row is stored),
   stop it, and print per-product health read back from ClickHouse, plus the
   scenario's story: the regressing release against its predecessor and the
   decaying product's first week against its last.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console

from pipeline import catalog, clickhouse
from pipeline.kafka.admin import delete_topics, ensure_topics
from pipeline.settings import Settings
from pipeline.tools import localkafka, synth
from pipeline.tools.load import send_traffic, traffic_config
from pipeline.tools.workerproc import WorkerProcess

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

SPAN = timedelta(days=14)


# What the rules found, as (name, title, columns, rows) tables; handed in by the CLI (this module knows nothing
# of alerts), so the tables come as plain tuples rather than this module's Table.
Findings = Callable[
    ["Client", Settings, datetime, datetime, Console], Sequence[tuple[str, str, list[str], list[tuple[Any, ...]]]]
]


class Table(NamedTuple):
    """One result table of the demo: a name for scripts, a title for people, columns and rows."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


SUMMARY_METRICS = ["events", "sessions", "crash_free_sessions", "error_rate", "latency_mean_ms", "latency_p95_ms"]


def demo_end(now: datetime) -> datetime:
    """Where the demo's fortnight ends: the last UTC midnight at or before ``now``."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def demo_settings(settings: Settings) -> Settings:
    """The demo's own topics and ClickHouse folder, so it never mixes with real data."""
    run = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "topic_prefix": f"{settings.topic_prefix}-demo-{run}",
            "consumer_group": f"{settings.consumer_group}_demo_{run}",
            "data_dir": settings.data_dir / "demo",
        }
    )


def run_demo(
    settings: Settings,
    duration_s: float = 30.0,
    rate: int = 5000,
    scenario: str = "regression_and_decay",
    seed: int = 7,
    findings: Findings | None = None,
    serve: bool = False,
) -> list[Table]:
    """Run the demo end to end; the tables it read back from ClickHouse, for the caller to print.

    ``findings`` (handed in by the CLI, :func:`pipeline.usecases.findings.demo_findings`: this module knows
    nothing of alerts) adds
    what the rules found over the demo's event time. With ``serve`` the worker is
    started again after the report and serves the built-in dashboards until Ctrl-C.
    """
    console = Console(stderr=True)
    demo = demo_settings(settings)
    shutil.rmtree(demo.data_dir, ignore_errors=True)
    started_kafka = localkafka.start(demo.kafka_bootstrap)
    worker = WorkerProcess(demo, demo.data_dir / "worker.log")
    try:
        ensure_topics(demo)
        console.print(f"[bold]worker[/] starting (log: {worker.log_path})")
        worker.start().wait_ready()
        cfg = traffic_config(max(1, int(duration_s * rate)), SPAN, scenario, seed, end=demo_end(datetime.now(UTC)))
        sent = send_traffic(demo, cfg, rate, console)
        console.print(f"sent {sent:,} events; waiting for the worker to store them ...")
        worker.wait_drained(demo.events_topic, timeout_s=max(120.0, duration_s * 4))
        worker.stop()
        tables = _report(demo, cfg, sent, findings, console)
        if serve:
            _serve(demo, console)
        console.print(
            f"explore further: PULSE_DATA_DIR={demo.data_dir} pulse metrics query crash_rate latency_p95_ms "
            "--by product version"
        )
        return tables
    finally:
        worker.stop()
        with contextlib.suppress(Exception):  # best effort: leftover demo topics are harmless
            delete_topics(demo)
        if started_kafka:
            localkafka.stop(demo.kafka_bootstrap)


def _serve(settings: Settings, console: Console) -> None:
    """Serve the built-in dashboards on the demo's store until Ctrl-C."""
    worker = WorkerProcess(settings, settings.data_dir / "serve.log")
    try:
        worker.start().wait_ready()
        console.print(
            f"[bold]dashboards[/] at {settings.web_url}/ (portfolio), /products/<product>, /releases - Ctrl-C to stop"
        )
        while worker.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        worker.stop()


def _report(
    settings: Settings, cfg: synth.TrafficConfig, sent: int, findings: Findings | None, console: Console
) -> list[Table]:
    since = cfg.start - timedelta(days=1)
    story = synth.scenario_story(cfg)
    with clickhouse.opened(settings) as client:
        db = settings.clickhouse_database
        found = findings(client, settings, cfg.start, cfg.start + cfg.span, console) if findings else []
        extra = [Table(*t) for t in found]
        cols, rows = catalog.query(client, db, SUMMARY_METRICS, since)
        stored = client.query(f"SELECT count() FROM {db}.events FINAL").result_rows[0][0]
        release_rows: list[tuple[Any, ...]] = []
        decay_rows: list[tuple[Any, ...]] = []
        if story:
            _, release_rows = catalog.query(
                client,
                db,
                ["sessions", "crash_rate", "error_rate", "latency_p95_ms"],
                since,
                product=story["regressing_product"],
                by=("product", "version"),
            )
            week = timedelta(days=7)
            for label, lo in (("first week", cfg.start), ("last week", cfg.start + cfg.span - week)):
                _, r = catalog.query(
                    client,
                    db,
                    ["sessions", "nps", "tickets_per_1k_sessions", "task_success_rate"],
                    lo,
                    until=lo + week,
                    product=story["decaying_product"],
                )
                decay_rows += [(label, *row) for row in r]
    release_cols = ["product", "version", "sessions", "crash_rate", "error_rate", "latency_p95_ms"]
    decay_cols = ["period", "product", "sessions", "nps", "tickets_per_1k_sessions", "task_success_rate"]
    tables = [Table("products", f"Product health (sent {sent:,} events, stored {stored:,})", cols, rows)]
    if story:
        tables.append(
            Table(
                "regressing_release",
                f"Regressing release: {story['regressing_release']} against earlier versions",
                release_cols,
                release_rows,
            )
        )
        tables.append(
            Table(
                "decaying_product",
                f"Decaying product: {story['decaying_product']}, first week against last week",
                decay_cols,
                decay_rows,
            )
        )
    return tables + extra
