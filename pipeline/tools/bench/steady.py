"""``pulse bench freshness`` and ``pulse bench soak``: ProductPulse under steady live load.

A paced sender produces synthetic events (a pool from :mod:`pipeline.tools.synth`,
each re-stamped with the current time and a fresh ``event_id`` as it is sent)
at ``rate`` events/s, one per message or in packs of up to 100 per partition
(sent when full or after 50 ms, like the emitter), to a fresh topic that a
``pulse worker`` consumes.

Freshness is measured per event, from outside the worker: the sender records
each message's partition and offset (delivery reports) and the time stamped
into its events; a watcher polls the worker's committed offsets every 100 ms.
The worker commits only after ClickHouse holds the rows, so when a message's
offset is committed its events are queryable: freshness = that moment minus
the event time. Soak samples the worker's RSS every 5 s over the run and
reports first (after a warm-up of a fifth of the run, at most a minute), last,
min, max and the drift from first to last. Both check at the end that the
worker stored every event sent, once.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.events import encode_event, partition_key
from pipeline.kafka.admin import ensure_topics
from pipeline.kafka.config import confluent_config
from pipeline.settings import Settings
from pipeline.tools import synth
from pipeline.tools.bench import report, verify
from pipeline.tools.bench.cleanup import delete_run_topics
from pipeline.tools.bench.contenders import BENCH_EXTRA
from pipeline.tools.bench.group import GroupWatch, end_offsets
from pipeline.tools.bench.workload import (
    PACK_EVENTS,
    PACK_HEADERS,
    Format,
    Truth,
    partition_of,
    traffic_config,
)
from pipeline.tools.workerproc import WorkerProcess

POOL_EVENTS = 50_000
LINGER_S = 0.05


@dataclass
class Template:
    partition: int
    key: bytes
    value: bytes
    event_id: bytes
    ts: bytes
    kind: str


@dataclass
class Sent:
    """Per partition, messages delivered and not yet seen committed: (offset, event times)."""

    pending: dict[int, deque[tuple[int, list[float]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    events: int = 0
    truth: Truth = field(default_factory=Truth)


def pool(partitions: int, n: int) -> list[Template]:
    out = []
    for event in synth.traffic(traffic_config(n, seed=5)):
        value = encode_event(event)
        ts = json.loads(value)["ts"].encode()
        key = partition_key(event)
        out.append(Template(partition_of(key, partitions), key, value, str(event.event_id).encode(), ts, event.type))
    return out


def send_steady(
    settings: Settings, fmt: Format, rate: int, duration_s: float, sent: Sent, console: Console,
    every_second: Callable[[], None] | None = None,
) -> None:  # fmt: skip
    """Produce live events at ``rate`` for ``duration_s``, recording each delivered message's offset and times."""
    from confluent_kafka import Producer

    templates = pool(settings.topic_partitions, min(POOL_EVENTS, max(1000, int(rate * duration_s))))
    producer = Producer({**confluent_config(settings), "acks": "all", "linger.ms": 5})
    topic = settings.events_topic
    packs: dict[int, tuple[list[bytes], list[float]]] = {}
    last_linger = last_second = started = time.monotonic()
    count = 0

    def delivered(stamps: list[float]) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, msg: Any) -> None:
            if err is None:
                with sent.lock:
                    sent.pending.setdefault(msg.partition(), deque()).append((msg.offset(), stamps))

        return on_delivery

    def send_pack(p: int) -> None:
        values, stamps = packs.pop(p)
        producer.produce(topic, b"\n".join(values), partition=p, headers=PACK_HEADERS, on_delivery=delivered(stamps))

    columns = (TextColumn(f"steady load {rate:,}/s"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("load", total=duration_s)
        while (elapsed := time.monotonic() - started) < duration_s:
            due = int(rate * elapsed) - count
            now = time.time()
            stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z").encode()
            minute = int(now) // 60 * 60
            for _ in range(due):
                t = templates[count % len(templates)]
                value = t.value.replace(t.event_id, str(uuid.uuid4()).encode(), 1).replace(t.ts, stamp, 1)
                sent.truth.events += 1
                sent.truth.by_type[t.kind] += 1
                sent.truth.by_minute[minute] += 1
                count += 1
                if fmt == "single":
                    producer.produce(topic, value, t.key, partition=t.partition, on_delivery=delivered([now]))
                    continue
                values, stamps = packs.setdefault(t.partition, ([], []))
                values.append(value)
                stamps.append(now)
                if len(values) >= PACK_EVENTS:
                    send_pack(t.partition)
            mono = time.monotonic()
            if mono - last_linger >= LINGER_S:
                for p in list(packs):
                    send_pack(p)
                last_linger = mono
            if every_second is not None and mono - last_second >= 1.0:
                every_second()
                last_second = mono
            producer.poll(0)
            progress.update(task, completed=elapsed)
            time.sleep(0.005)
        for p in list(packs):
            send_pack(p)
        if producer.flush(60):
            raise RuntimeError("steady load: the broker did not acknowledge every message")
    sent.events = count


def watch_commits(watch: GroupWatch, sent: Sent, stop: threading.Event) -> None:
    """Turn committed offsets into per-event freshness until ``stop`` is set and nothing is pending."""
    while True:
        committed = watch.committed()
        now = time.time()
        with sent.lock:
            for p, queue in sent.pending.items():
                done = committed.get(p, 0)
                while queue and queue[0][0] < done:
                    sent.latencies.extend(now - t for t in queue.popleft()[1])
            pending = sum(len(q) for q in sent.pending.values())
        if stop.is_set() and not pending:
            return
        time.sleep(0.1)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _steady(
    base: Settings, fmt: Format, rate: int, duration_s: float, console: Console, sample_rss: bool
) -> tuple[int, dict[str, Any]]:
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        console.print(f"[red]freshness and soak need confluent-kafka for the paced sender: {escape(BENCH_EXTRA)}[/]")
        return 2, {}
    run = uuid.uuid4().hex[:8]
    prefix = f"{base.topic_prefix}.bench-{run}"
    root = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    settings = base.model_copy(
        update={"topic_prefix": prefix, "consumer_group": f"{prefix}.pulse", "data_dir": root / "pulse",
                "metrics_port": 0, "web_port": 0}
    )  # fmt: skip
    sent = Sent()
    rss: list[tuple[float, int]] = []
    stop = threading.Event()
    problems: list[str] = []
    proc = WorkerProcess(settings, root / "pulse.log")
    try:
        ensure_topics(settings)
        proc.start()
        proc.wait_ready(timeout_s=120)
        watch = GroupWatch(settings, settings.events_topic, settings.consumer_group, {})
        while not watch.reading():
            time.sleep(0.05)
        watch.ends = {p: 0 for p in range(settings.topic_partitions)}
        watcher = threading.Thread(target=watch_commits, args=(watch, sent, stop), daemon=True)
        watcher.start()
        t0 = time.monotonic()

        def sample() -> None:
            if sample_rss and int(time.monotonic() - t0) % 5 == 0:
                rss.append((time.monotonic() - t0, proc.rss_bytes()))

        send_steady(settings, fmt, rate, duration_s, sent, console, every_second=sample)
        stop.set()
        watcher.join(timeout=120)
        if watcher.is_alive():
            problems.append("the worker did not commit every message within 120 s after the load ended")
        peak = proc.peak_rss_bytes()
        ends = end_offsets(settings, settings.events_topic)
        watch.ends = ends
        lag = watch.lag()
        watch.close()
    finally:
        stop.set()
        proc.stop()
        with contextlib.suppress(Exception):
            delete_run_topics(settings, run)
    try:
        if lag:
            problems.append(f"{lag} messages never committed")
        problems += verify.check_stored(settings, sent.truth, "pulse")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    lat = sent.latencies
    fresh = {
        "events_measured": len(lat),
        "p50_s": quantile(lat, 0.5),
        "p90_s": quantile(lat, 0.9),
        "p99_s": quantile(lat, 0.99),
        "max_s": max(lat) if lat else None,
    }
    doc: dict[str, Any] = {
        "params": {"format": fmt, "rate": rate, "duration_s": duration_s, "partitions": settings.topic_partitions},
        "events_sent": sent.events,
        "freshness": fresh,
        "peak_rss_mib": peak / 2**20,
        "correct": not problems,
        "problems": problems,
        "machine": report.machine(),
    }
    if sample_rss:
        warm = min(60.0, duration_s / 5)
        after = [b for t, b in rss if t >= warm] or [b for _, b in rss]
        doc["rss_mib"] = {
            "warmup_s": warm,
            "first": after[0] / 2**20 if after else None,
            "last": after[-1] / 2**20 if after else None,
            "min": min(after) / 2**20 if after else None,
            "max": max(after) / 2**20 if after else None,
            "drift_pct": (after[-1] - after[0]) / after[0] * 100 if after else None,
            "samples": [[round(t, 1), round(b / 2**20, 1)] for t, b in rss],
        }
    _print(doc, console)
    return (0 if not problems else 1), doc


def _print(doc: dict[str, Any], console: Console) -> None:
    t = Table(title=f"ProductPulse under {doc['params']['rate']:,} events/s, format {doc['params']['format']}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    f = doc["freshness"]
    t.add_row("events sent", f"{doc['events_sent']:,}")
    for name in ("p50_s", "p90_s", "p99_s", "max_s"):
        t.add_row(f"freshness {name[:-2]} (s)", f"{f[name]:.2f}" if f[name] is not None else "-")
    t.add_row("peak RSS (MiB)", f"{doc['peak_rss_mib']:,.0f}")
    if "rss_mib" in doc:
        r = doc["rss_mib"]
        for name in ("first", "last", "min", "max"):
            t.add_row(f"RSS {name} (MiB)", f"{r[name]:,.0f}" if r[name] is not None else "-")
        t.add_row("RSS drift first->last", f"{r['drift_pct']:+.1f}%" if r["drift_pct"] is not None else "-")
    t.add_row(
        "stored totals", "[green]correct[/]" if doc["correct"] else "[red]WRONG[/]: " + "; ".join(doc["problems"])
    )
    console.print(t)


def run_freshness(settings: Settings, fmt: Format, rate: int, duration_s: float, console: Console) -> tuple[int, dict]:
    code, doc = _steady(settings, fmt, rate, duration_s, console, sample_rss=False)
    return code, ({"mode": "freshness", **doc} if doc else doc)


def run_soak(settings: Settings, fmt: Format, rate: int, duration_s: float, console: Console) -> tuple[int, dict]:
    code, doc = _steady(settings, fmt, rate, duration_s, console, sample_rss=True)
    return code, ({"mode": "soak", **doc} if doc else doc)
