"""Run a worker (or any ``pulse`` command) as a child process and watch it.

The demo, the benchmark and the integration tests all need the same things:
start a worker with given settings, wait until the consumer group has
committed everything in a topic (commits follow ClickHouse inserts, so zero
lag means every row is stored), read its peak RSS, and stop or kill it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from pipeline.kafka.admin import consumer_lag
from pipeline.settings import Settings


class WorkerProcess:
    def __init__(
        self, settings: Settings, log_path: Path, args: tuple[str, ...] = ("worker",), module: str = "pipeline.cli"
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.args = args
        self.module = module  # `python -m <module> <args>`: the CLI, or a tool's own entry point
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **self.settings.to_env()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args], stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout_s: float = 60.0) -> None:
        """Wait until the worker's log contains ``needle`` (e.g. its readiness line)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if needle in self.log_text():
                return
            if not self.alive():
                raise RuntimeError(f"worker exited before {needle!r}; log tail:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"worker did not log {needle!r} within {timeout_s}s; see {self.log_path}")

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        self.wait_for_log("[^Worker]: Ready", timeout_s)

    def wait_drained(self, topic: str, timeout_s: float = 300.0, poll_s: float = 0.5) -> float:
        """Block until the worker's group has committed every message in ``topic``; returns when it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited while draining; log tail:\n{self.log_text()[-3000:]}")
            if consumer_lag(self.settings, topic) == 0:
                return time.monotonic()
            time.sleep(poll_s)
        raise TimeoutError(f"worker did not drain {topic} within {timeout_s}s; see {self.log_path}")

    def peak_rss_bytes(self) -> int:
        """High-water resident set size (VmHWM) of the process and its child processes, summed, read while
        they run (an upper bound of their peak together: each one's peak may come at another moment)."""
        return sum(_status_bytes(pid, "VmHWM:") for pid in self.pids())

    def cpu_seconds(self) -> float:
        """User + system CPU time the process and its child processes (all threads) have used so far."""
        return sum(map(_cpu_seconds, self.pids()))

    def rss_bytes(self) -> int:
        """Resident set size now (VmRSS) of the process and its child processes, summed."""
        return sum(_status_bytes(pid, "VmRSS:") for pid in self.pids())

    def pids(self) -> list[int]:
        """The process and its descendants (e.g. the worker's decode process), from /proc."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
        family = [self.pid]
        for pid in family:  # grows while it is walked: breadth first
            family.extend(child for child, parent in parents.items() if parent == pid)
        return family

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, wait, SIGKILL if it does not go; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the crash case, nothing gets to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, ... (field 3 onwards of proc(5))."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat_fields(pid)
    except OSError:  # it has just ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _status_bytes(pid: int, key: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith(key)), 0)
