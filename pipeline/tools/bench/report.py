"""How a bench run is shown: a rich table for people, one JSON document for machines."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from dataclasses import asdict
from importlib import metadata
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.tools.bench.contenders import Result

LIBRARIES = ("faust-streaming", "aiokafka", "kafka-python", "confluent-kafka", "quixstreams", "orjson", "pydantic",
             "clickhouse-connect", "chdb")  # fmt: skip


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115 - read once, closed by the GC
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))  # noqa: SIM115
    except OSError:
        mem_kib = 0
    versions: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": versions,
    }


def command_line() -> str:
    """How this run was started, as a user would type it."""
    argv = sys.argv
    if argv[0].endswith("__main__.py"):
        return shlex.join(["python", "-m", "pipeline.tools.bench", *argv[1:]])
    if argv[1:2] == ["bench"]:
        return shlex.join(["pulse", *argv[1:]])
    return shlex.join(argv)


def document(mode: str, params: dict[str, Any], results: list[Result], extra: dict[str, Any] | None = None) -> dict:
    return {
        "mode": mode,
        "command": command_line(),
        "params": params,
        "machine": machine(),
        "contenders": [asdict(r) for r in results],
        "ratios_to_pulse": {r.key: r.ratio_to_pulse for r in results if r.ratio_to_pulse is not None},
        **(extra or {}),
    }


def table(results: list[Result], title: str) -> Table:
    t = Table(title=title)
    for name, justify in (("contender", "left"), ("events/s", "right"), ("CPU s / 1M events", "right"),
                          ("peak RSS MiB", "right"), ("x ProductPulse", "right"), ("totals", "left")):  # fmt: skip
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        if r.status == "ok":
            totals = "[green]correct[/]"
            speed = f"{r.events_per_s:,.0f}" if r.events_per_s else "-"
        else:
            totals = f"[red]{r.status}[/]" if r.status != "not installed" else "[yellow]not installed[/]"
            speed = "-" if r.status != "WRONG" else "[red]WRONG[/]"
        t.add_row(
            r.title,
            speed,
            f"{r.cpu_s_per_million:,.1f}" if r.cpu_s_per_million is not None and r.status == "ok" else "-",
            f"{r.peak_rss_mib:,.0f}" if r.peak_rss_mib is not None else "-",
            f"{r.ratio_to_pulse:.2f}x" if r.ratio_to_pulse is not None else "-",
            totals + (f" - {r.detail}" if r.detail and r.status != "ok" else ""),
        )
    return t


def print_table(results: list[Result], title: str, to_stderr: bool) -> None:
    Console(stderr=to_stderr, width=160).print(table(results, title))
