"""The contenders and how each one is measured on the bench topic.

Every contender is a child process with its own cold consumer group and its
own embedded ClickHouse folder (with a server DSN: its own database), started
after the topic is complete. Its clock runs from the moment its group finished
joining (state Stable: fetching starts; a join costs every client the broker's
initial rebalance delay and is not work) until all its results are queryable:

* ``lag`` - the group has committed every message, for contenders that commit
  only after their inserts (ProductPulse, quixstreams, the naive consumer);
* ``progress`` - the child printed that its inserted raw rows and window counts
  both reached the topic's events (textbook Faust commits on its own timer);
* ``self`` - the ceilings time themselves from their first message to the end
  of the topic and report their own CPU and peak RSS.

CPU seconds are the child's user+system time over that span (/proc), peak RSS
its VmHWM; afterwards the stored totals are checked (:mod:`verify`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.settings import Settings
from pipeline.tools.bench import ceiling, verify
from pipeline.tools.bench.group import GroupWatch
from pipeline.tools.bench.workload import Workload
from pipeline.tools.workerproc import WorkerProcess

Done = Literal["lag", "progress", "self"]
PROGRESS = re.compile(r"bench-progress raw=(\d+) windows=(\d+)")


@dataclass(frozen=True)
class Contender:
    key: str
    title: str
    module: str
    args: tuple[str, ...]
    done: Done
    stores: bool
    aggregates: verify.Aggregates
    requires: tuple[str, ...] = ()
    what: str = ""


CONTENDERS: tuple[Contender, ...] = (
    Contender("ceiling-read", "ceiling: read", "pipeline.tools.bench.ceiling", (), "self", False, None,
              what="fastest Python read, no work"),
    Contender("ceiling-parse", "ceiling: read + parse", "pipeline.tools.bench.ceiling", ("--parse",), "self", False,
              None, what="read + orjson.loads per event, no store"),
    Contender("pulse", "ProductPulse", "pipeline.cli", ("worker",), "lag", True, "pulse",
              what="pulse worker: raw rows, minute partials, breakdowns, unique users"),
    Contender("faust", "textbook Faust", "pipeline.tools.bench.textbook_faust", (), "progress", True, "windows",
              requires=("faust",), what="per-event agent, windowed table, raw rows"),
    Contender("quixstreams", "quixstreams", "pipeline.tools.bench.quix_app", (), "lag", True, "windows",
              requires=("quixstreams", "confluent_kafka"), what="tumbling count, BatchingSink, raw rows"),
    Contender("naive", "naive script", "pipeline.tools.bench.naive", (), "lag", True, None,
              what="kafka-python, pydantic, raw rows per poll"),
)  # fmt: skip
BY_KEY = {c.key: c for c in CONTENDERS}


@dataclass
class Result:
    key: str
    title: str
    status: Literal["ok", "WRONG", "not installed", "failed"]
    events: int = 0
    seconds: float | None = None
    events_per_s: float | None = None
    cpu_seconds: float | None = None
    cpu_s_per_million: float | None = None
    peak_rss_mib: float | None = None
    ratio_to_pulse: float | None = None
    detail: str = ""


BENCH_EXTRA = "pip install 'productpulse[bench]' (from a checkout: pip install -e '.[bench]')"


def missing(contender: Contender) -> list[str]:
    """Optional libraries this contender needs that are not installed."""
    return [m for m in contender.requires if importlib.util.find_spec(m) is None]


def measure(
    contender: Contender,
    settings: Settings,
    workload: Workload,
    ends: dict[int, int],
    root: Path,
    console: Console,
    timeout_s: float,
) -> Result:
    """Run one contender over the bench topic and check what it stored."""
    result = Result(contender.key, contender.title, "ok", events=workload.events)
    lacking = missing(contender)
    if lacking:
        result.status, result.detail = "not installed", f"needs {', '.join(lacking)}: {BENCH_EXTRA}"
        return result
    args = contender.args
    if contender.done == "self":
        args = (*args, "--ends", ",".join(f"{p}:{o}" for p, o in sorted(ends.items())))
    proc = WorkerProcess(settings, root / f"{contender.key}.log", args=args, module=contender.module)
    proc.start()
    try:
        if contender.done == "self":
            _run_ceiling(proc, contender, workload, result, timeout_s)
        else:
            _run_until_done(proc, contender, settings, workload, ends, result, console, timeout_s)
    except (RuntimeError, TimeoutError) as exc:
        result.status, result.detail = "failed", str(exc).splitlines()[0][:300]
        console.print(f"[red]{contender.title} failed[/]: {exc}")
    finally:
        code = proc.stop()
    if result.status == "failed":
        return result
    if contender.stores:
        problems = verify.check_stored(settings, workload.truth, contender.aggregates)
        if problems:
            result.status, result.detail = "WRONG", "; ".join(problems)
        else:
            result.detail = "raw rows once each" + (", per-minute counts exact" if contender.aggregates else "")
    if result.status == "ok" and code not in (0, -15, 143):
        console.print(f"[yellow]{contender.title} exited with {code} after it finished[/]")
    return result


def _run_ceiling(
    proc: WorkerProcess, contender: Contender, workload: Workload, result: Result, timeout_s: float
) -> None:
    assert proc.proc is not None
    try:
        proc.proc.wait(timeout_s)
    except Exception as exc:
        raise TimeoutError(f"{contender.title} did not finish within {timeout_s:.0f}s") from exc
    lines = [line for line in proc.log_text().splitlines() if line.startswith(ceiling.RESULT_PREFIX)]
    if not lines:
        raise RuntimeError(f"{contender.title} reported nothing; log tail:\n{proc.log_text()[-2000:]}")
    tally = json.loads(lines[-1].removeprefix(ceiling.RESULT_PREFIX))
    parsed = "--parse" in contender.args
    problems = verify.check_read(tally["by_type"], tally["events"], workload.truth, parsed)
    _fill(result, tally["seconds"], tally["cpu_seconds"], tally["peak_rss_bytes"])
    what = f"{ceiling.library()}" + (", every event parsed and counted by type" if parsed else "")
    result.status, result.detail = ("WRONG", "; ".join(problems)) if problems else ("ok", what)


def _run_until_done(
    proc: WorkerProcess,
    contender: Contender,
    settings: Settings,
    workload: Workload,
    ends: dict[int, int],
    result: Result,
    console: Console,
    timeout_s: float,
) -> None:
    watch = GroupWatch(settings, settings.events_topic, settings.consumer_group, ends)
    total_messages = sum(ends.values())
    deadline = time.monotonic() + timeout_s
    try:
        while not watch.reading():
            _check(proc, contender, deadline, "join its consumer group")
            time.sleep(0.05)
        t0, cpu0 = time.monotonic(), proc.cpu_seconds()
        columns = (TextColumn(f"{contender.title:16}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            unit = total_messages if contender.done == "lag" else workload.events
            task = progress.add_task(contender.key, total=unit)
            while True:
                _check(proc, contender, deadline, "finish")
                if contender.done == "lag":
                    left = watch.lag()
                    progress.update(task, completed=total_messages - left)
                    finished = left == 0
                else:
                    raw, windows = _progress(proc)
                    progress.update(task, completed=min(raw, windows))
                    finished = raw >= workload.events and windows >= workload.events
                if finished:
                    t1, cpu1 = time.monotonic(), proc.cpu_seconds()
                    break
                time.sleep(0.25)
        _fill(result, t1 - t0, cpu1 - cpu0, proc.peak_rss_bytes())
    finally:
        watch.close()


def _progress(proc: WorkerProcess) -> tuple[int, int]:
    try:
        with open(proc.log_path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode(errors="replace")
    except FileNotFoundError:
        return 0, 0
    found = PROGRESS.findall(tail)
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def _check(proc: WorkerProcess, contender: Contender, deadline: float, doing: str) -> None:
    if not proc.alive():
        raise RuntimeError(f"{contender.title} exited before it could {doing}; log tail:\n{proc.log_text()[-3000:]}")
    if time.monotonic() > deadline:
        raise TimeoutError(f"{contender.title} did not {doing} in time; see {proc.log_path}")


def _fill(result: Result, seconds: float, cpu_seconds: float, peak_rss_bytes: int) -> None:
    result.seconds = seconds
    result.events_per_s = result.events / seconds if seconds > 0 else None
    result.cpu_seconds = cpu_seconds
    result.cpu_s_per_million = cpu_seconds / result.events * 1e6 if result.events else None
    result.peak_rss_mib = peak_rss_bytes / 2**20
