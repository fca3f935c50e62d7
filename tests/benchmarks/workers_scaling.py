"""Benchmark: throughput of 1, 2 and 3 ``pulse worker`` processes in one consumer group on one ClickHouse server.

Run it from a checkout, with the local broker up::

    PYTHONPATH=$PWD:$PWD/tests python tests/benchmarks/workers_scaling.py --events 200000 --workers 1,2,3

It starts the test-only stand-in for a ClickHouse server (``tests/support/chserver.py``;
scale-out needs a server, embedded chDB is one process), produces one topic of
``--events`` synthetic events once (12 partitions, the SDK's packs by default:
``pulse bench``'s workload), then for each worker count starts that many
workers in a cold consumer group with a database of its own and times them
from the moment the group is stable with all of them until it has committed
everything (commits follow ClickHouse's acknowledgement, so that is "stored").
Every run's stored totals are checked as ``pulse bench`` checks them: a wrong
run is reported WRONG, not as a speed.

It reports events/s, the workers' CPU seconds per million events and the
stand-in's. This is a measurement, not a test: nothing here asserts a speed.
On a two-core machine the workers and the server share two cores, so more
workers show their overhead (more consumers, more and smaller inserts, more
processes), not a speed-up; on separate machines each worker brings its own
cores. ``tests/benchmarks/test_workers_scaling.py`` runs a small one for
correctness only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from support.chserver import ChServer

from pipeline.kafka.admin import ensure_topics
from pipeline.settings import Settings
from pipeline.tools.bench import verify
from pipeline.tools.bench.cleanup import delete_run_topics
from pipeline.tools.bench.group import GroupWatch, end_offsets
from pipeline.tools.bench.report import machine
from pipeline.tools.bench.workload import generate, produce
from pipeline.tools.workerproc import WorkerProcess


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (the stand-in: its threads run every query)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def members(watch: GroupWatch) -> int:
    """Members of a Stable group (0 while it is still joining or rebalancing)."""
    info = watch.admin.describe_groups([watch.group]).get(watch.group) or {}
    return len(info.get("members") or ()) if info.get("group_state") == "Stable" else 0


def run_group(
    base: Settings, root: Path, n: int, ends: dict[int, int], events: int, server: ChServer, timeout_s: float
) -> dict:
    """Start ``n`` workers of a fresh group, time them until the topic is committed, check what they stored."""
    settings = base.model_copy(
        update={
            "consumer_group": f"{base.topic_prefix}.w{n}",
            "clickhouse_database": f"{base.clickhouse_database}_w{n}",
            "data_dir": root / f"w{n}",
        }
    )
    workers = [
        WorkerProcess(settings.model_copy(update={"data_dir": root / f"w{n}" / f"worker{i}"}), root / f"w{n}-{i}.log")
        for i in range(n)
    ]
    watch = GroupWatch(settings, settings.events_topic, settings.consumer_group, ends)
    result: dict = {"workers": n, "events": events, "status": "ok"}
    try:
        for w in workers:
            w.start()
        deadline = time.monotonic() + timeout_s
        while members(watch) < n:
            if time.monotonic() > deadline or not all(w.alive() for w in workers):
                raise RuntimeError(f"{n} workers did not form a stable group; see {root}")
            time.sleep(0.05)
        assert server.proc is not None
        t0 = time.monotonic()
        cpu0 = sum(w.cpu_seconds() for w in workers)
        server_cpu0 = process_cpu_seconds(server.proc.pid)
        while watch.lag() > 0:
            if time.monotonic() > deadline or not all(w.alive() for w in workers):
                raise RuntimeError(f"{n} workers did not drain the topic; see {root}")
            time.sleep(0.25)
        seconds = time.monotonic() - t0
        cpu = sum(w.cpu_seconds() for w in workers) - cpu0
        server_cpu = process_cpu_seconds(server.proc.pid) - server_cpu0
        result |= {
            "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds),
            "workers_cpu_s_per_million": round(cpu / events * 1e6, 1),
            "server_cpu_s_per_million": round(server_cpu / events * 1e6, 1),
            "peak_rss_mib_per_worker": round(max(w.peak_rss_bytes() for w in workers) / 2**20),
        }
    except RuntimeError as exc:
        result |= {"status": "failed", "detail": str(exc)}
    finally:
        watch.close()
        for w in workers:
            w.stop()
    return result | {"settings": settings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", default="1,2,3", help="comma-separated worker counts, run in this order")
    parser.add_argument("--format", choices=("single", "pack"), default="pack")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="print one JSON document (stdout)")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    counts = [int(c) for c in args.workers.split(",")]

    run = uuid.uuid4().hex[:8]
    root = Path(tempfile.mkdtemp(prefix="pulse-scaling-"))
    server = ChServer(root / "clickhouse", root / "chserver.log").start()
    base = Settings().model_copy(
        update={
            "topic_prefix": f"{Settings().topic_prefix}.bench-{run}",  # delete_run_topics finds it
            "topic_partitions": args.partitions,
            "clickhouse_dsn": SecretStr(server.dsn()),
            "clickhouse_database": f"pulse_scale_{run}",
            "metrics_port": 0,
            "web_port": 0,
        }
    )
    results = []
    try:
        ensure_topics(base)
        workload = generate(args.events, args.format, args.partitions, console)
        produce_s = produce(base, base.events_topic, workload, console)
        ends = end_offsets(base, base.events_topic)
        console.print(f"{workload.events:,} events in {len(workload.messages):,} {args.format} messages, "
                      f"{len(ends)} partitions, produced in {produce_s:.1f} s")  # fmt: skip
        del workload.messages[:]
        for n in counts:
            r = run_group(base, root, n, ends, workload.events, server, timeout_s=180 + args.events / 200)
            settings = r.pop("settings")
            if r["status"] == "ok":
                problems = verify.check_stored(settings, workload.truth, "pulse")
                if problems:
                    r |= {"status": "WRONG", "detail": "; ".join(problems)}
            results.append(r)
            speed = f"{r['events_per_s']:,} events/s" if "events_per_s" in r else r.get("detail", "")
            console.print(f"{n} worker(s): {speed}; totals {r['status']}")
    finally:
        delete_run_topics(base, run)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    doc = {"mode": "workers-scaling", "params": vars(args), "machine": machine(), "results": results}
    doc["correct"] = all(r["status"] == "ok" for r in results)
    for r in results:
        if "events_per_s" in r:
            console.print(
                f"{r['workers']} worker(s): {r['events_per_s']:>8,} events/s  {r['seconds']:>7.1f} s  "
                f"workers {r['workers_cpu_s_per_million']:>6.1f} CPU s/M  server {r['server_cpu_s_per_million']:>6.1f}"
                f" CPU s/M  peak RSS/worker {r['peak_rss_mib_per_worker']} MiB"
            )
    if args.json:
        print(json.dumps(doc))
    return 0 if doc["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
