"""``pulse bench`` (throughput): every contender on the same pre-produced topic, checked against the truth."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from pipeline.kafka.admin import ensure_topics
from pipeline.settings import Settings
from pipeline.tools.bench import report
from pipeline.tools.bench.cleanup import delete_run_topics
from pipeline.tools.bench.contenders import BY_KEY, CONTENDERS, Contender, Result, measure, missing
from pipeline.tools.bench.group import end_offsets
from pipeline.tools.bench.workload import Format, generate, produce


@dataclass(frozen=True)
class Plan:
    events: int
    fmt: Format
    contenders: tuple[Contender, ...]
    quick: bool
    require_all: bool
    keep: bool = False


def run_settings(base: Settings, run: str) -> Settings:
    """The run's topics live under ``<prefix>.bench-<run>``; nothing else of the base changes yet."""
    return base.model_copy(update={"topic_prefix": f"{base.topic_prefix}.bench-{run}", "metrics_port": 0})


def contender_settings(run_base: Settings, root: Path, contender: Contender) -> Settings:
    """Own consumer group, own embedded folder (with a server: own database), no web or metrics ports."""
    name = contender.key.replace("-", "_")
    return run_base.model_copy(
        update={
            "consumer_group": f"{run_base.topic_prefix}.{contender.key}",
            "data_dir": root / contender.key,
            "clickhouse_database": run_base.clickhouse_database
            if run_base.embedded_clickhouse
            else f"{run_base.clickhouse_database}_{name}",
            "metrics_port": 0,
            "web_port": 0,
        }
    )


def run_throughput(base: Settings, plan: Plan, console: Console) -> tuple[int, dict[str, Any]]:
    """Run the plan; returns (exit code, the JSON document)."""
    lacking = {c.key: missing(c) for c in plan.contenders if missing(c)}
    if lacking and plan.require_all:
        console.print(f"[red]missing contenders: {lacking}; install the dev extra (pip install -e '.[dev]')[/]")
        return 2, {}
    run = uuid.uuid4().hex[:8]
    settings = run_settings(base, run)
    root = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    results: list[Result] = []
    produce_s = 0.0
    try:
        ensure_topics(settings)
        workload = generate(plan.events, plan.fmt, settings.topic_partitions, console)
        produce_s = produce(settings, settings.events_topic, workload, console)
        ends = end_offsets(settings, settings.events_topic)
        console.print(
            f"topic {settings.events_topic}: {workload.events:,} events in {len(workload.messages):,} "
            f"{plan.fmt} messages over {len(ends)} partitions, produced in {produce_s:.1f} s"
        )
        del workload.messages[:]  # the bytes are in Kafka now; keep the truth only
        timeout_s = 120 + plan.events / 500
        for contender in plan.contenders:
            started = time.monotonic()
            result = measure(
                contender, contender_settings(settings, root, contender), workload, ends, root, console, timeout_s
            )
            results.append(result)
            speed = f"{result.events_per_s:,.0f} events/s" if result.events_per_s else result.status
            console.print(
                f"{contender.title}: {speed}; totals {result.status} ({time.monotonic() - started:.0f} s incl. start)"
            )
    finally:
        with contextlib.suppress(Exception):
            delete_run_topics(settings, run)
        if plan.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    pulse = next((r for r in results if r.key == "pulse" and r.status == "ok"), None)
    for r in results:
        if pulse and pulse.events_per_s and r.events_per_s and r.status == "ok":
            r.ratio_to_pulse = r.events_per_s / pulse.events_per_s
    params = {"events": plan.events, "format": plan.fmt, "quick": plan.quick, "partitions": settings.topic_partitions,
              "contenders": [c.key for c in plan.contenders], "produce_seconds": round(produce_s, 2)}  # fmt: skip
    doc = report.document("throughput", params, results)
    bad = [r for r in results if r.status in ("WRONG", "failed") or (plan.require_all and r.status != "ok")]
    doc["correct"] = not bad
    return (1 if bad else 0), doc


def choose(keys: str | None) -> tuple[Contender, ...]:
    if not keys:
        return CONTENDERS
    chosen = []
    for key in (k.strip() for k in keys.split(",") if k.strip()):
        if key not in BY_KEY:
            raise ValueError(f"unknown contender {key!r}; choose from {', '.join(BY_KEY)}")
        chosen.append(BY_KEY[key])
    return tuple(chosen)


def in_ci() -> bool:
    """CI sets CI=true: there a missing contender fails the quick run instead of being skipped."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
