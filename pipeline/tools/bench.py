"""``pulse bench``: end-to-end throughput and memory of the worker against a naive baseline.

Both contenders get the same N synthetic events (generated and encoded once,
before any clock starts), each on its own fresh topic and embedded ClickHouse
folder, and are measured the same way:

* throughput = N / (seconds from the first produce until the consumer group has
  committed every message; both commit only after their ClickHouse insert, so
  that is when every row is queryable);
* peak RSS = the consumer process's VmHWM, read just before it is stopped;
* afterwards the rows are counted in ClickHouse: a run that lost or doubled
  events is reported as such, not as a speed.

The baseline is what a typical script does: a kafka-python consumer that
validates each event with pydantic and inserts each message's rows
(``client.insert``, row-wise) as it arrives, committing after each insert. It
writes raw rows only - no aggregates - so it does strictly less work.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from pipeline import clickhouse
from pipeline.events import EVENT_ADAPTER, encode_event, is_pack, partition_key, split_pack
from pipeline.kafka.admin import delete_topics, ensure_topics
from pipeline.kafka.config import kafka_python_config
from pipeline.kafka.emitter import Emitter
from pipeline.settings import Settings
from pipeline.tools import localkafka, synth
from pipeline.tools.workerproc import WorkerProcess


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    events_per_s: float
    peak_rss_mib: float
    rows_stored: int


def run_bench(
    settings: Settings, events: int = 1_000_000, baseline_events: int | None = None, json_out: bool = False
) -> int:
    console = Console(stderr=True)
    started_kafka = localkafka.start(settings.kafka_bootstrap)
    root = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    try:
        console.print(f"generating {events:,} events ...")
        payload = _generate(events)
        pulse = _measure(settings, root, "pulse", payload, ("worker",), "[^Worker]: Ready", console)
        n_base = min(baseline_events or events, events)
        naive = _measure(settings, root, "naive", payload[:n_base], ("naive",), "naive consumer ready", console)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if started_kafka:
            localkafka.stop(settings.kafka_bootstrap)
    ratio = pulse.events_per_s / naive.events_per_s if naive.events_per_s else float("inf")
    for r in (pulse, naive):
        print(
            f"{r.name:6} {r.events:>9,} events in {r.seconds:7.1f} s = {r.events_per_s:>9,.0f} events/s   "
            f"peak RSS {r.peak_rss_mib:7.1f} MiB   rows stored {r.rows_stored:,}"
        )
    print(f"ratio  pulse / naive throughput = {ratio:.2f}x")
    if json_out:
        print(json.dumps({"pulse": asdict(pulse), "naive": asdict(naive), "ratio": ratio}))
    ok = pulse.rows_stored == pulse.events and naive.rows_stored == naive.events
    return 0 if ok else 1


def _generate(n: int) -> list[tuple[bytes, bytes]]:
    cfg = synth.TrafficConfig(
        seed=11,
        start=datetime.now(UTC) - timedelta(days=7),
        span=timedelta(days=7),
        users_per_product=max(5, n // (5 * 23 * 7) + 1),
        max_events=n,
    )
    return [(partition_key(e), encode_event(e)) for e in synth.traffic(cfg)]


def _measure(
    base: Settings,
    root: Path,
    name: str,
    payload: list[tuple[bytes, bytes]],
    args: tuple[str, ...],
    ready_line: str,
    console: Console,
) -> Result:
    run = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{run}-{name}",
            "consumer_group": f"bench_{run}_{name}",
            "data_dir": root / name,
            # With a server, each contender gets its own scratch database (embedded: its own folder).
            "clickhouse_database": base.clickhouse_database
            if base.embedded_clickhouse
            else f"{base.clickhouse_database}_{name}",
            "metrics_port": 0,
            "web_port": 0,
        }
    )
    ensure_topics(settings)
    proc = WorkerProcess(settings, root / f"{name}.log", args=args).start()
    try:
        proc.wait_for_log(ready_line, timeout_s=120)
        t0 = time.monotonic()
        columns = (TextColumn(f"{name}: producing"), BarColumn(), MofNCompleteColumn())
        with Emitter(settings) as em, Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(name, total=len(payload))
            for i, (key, value) in enumerate(payload):
                em.emit_encoded(key, value)
                if i % 10_000 == 0:
                    progress.update(task, completed=i)
        console.print(f"{name}: produced {len(payload):,} in {time.monotonic() - t0:.1f} s; draining ...")
        t1 = proc.wait_drained(settings.events_topic, timeout_s=3600, poll_s=0.25)
        rss = proc.peak_rss_bytes()
    finally:
        proc.stop()
        with contextlib.suppress(Exception):  # best effort: leftover topics are harmless
            delete_topics(settings)
    with clickhouse.opened(settings) as client:
        stored = client.query(f"SELECT uniqExact(event_id) FROM {settings.clickhouse_database}.events").result_rows[0][
            0
        ]
    seconds = t1 - t0
    return Result(name, len(payload), seconds, len(payload) / seconds, rss / 2**20, int(stored))


# --- the naive baseline consumer (runs as `python -m pipeline.cli naive`) -------------------
EVENT_COLUMNS = [
    "event_id", "type", "product", "version", "ts", "user_id", "session_id", "environment", "platform",
    "properties", "status", "errors", "duration_ms", "feature", "success", "operation", "latency_ms",
    "status_code", "error", "kind", "handled", "goal", "value", "currency", "score", "ticket_id", "action",
    "severity", "kafka_partition", "kafka_offset", "pack_index",
]  # fmt: skip
_DEFAULTS = {"properties": "{}", "status": "", "errors": 0, "duration_ms": 0.0, "feature": "", "success": False,
             "operation": "", "latency_ms": 0.0, "status_code": 0, "error": "", "kind": "", "handled": False,
             "goal": "", "value": 0.0, "currency": "", "score": 0, "ticket_id": "", "action": "",
             "severity": ""}  # fmt: skip


def naive_consumer(settings: Settings) -> int:
    """Consume, validate each event, insert each message's rows, commit; until SIGTERM."""
    from kafka import KafkaConsumer

    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days)
    consumer = KafkaConsumer(
        settings.events_topic,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_python_config(settings),
    )
    consumer.poll(timeout_ms=1000)
    print("naive consumer ready", flush=True)
    table = f"{settings.clickhouse_database}.events"
    for msg in consumer:
        values = split_pack(msg.value) if is_pack(msg.headers) else [msg.value]
        rows = []
        for index, value in enumerate(values):
            event = EVENT_ADAPTER.validate_json(value).model_dump()
            row = {
                **_DEFAULTS,
                **event,
                "kafka_partition": msg.partition,
                "kafka_offset": msg.offset,
                "pack_index": index,
            }
            row["properties"] = json.dumps(row["properties"])
            rows.append([row[c] for c in EVENT_COLUMNS])
        client.insert(table, rows, column_names=EVENT_COLUMNS)
        consumer.commit()
    return 0
