"""Run a worker (or any ``pulse`` command) as a child process and watch it.

The demo, the benchmark and the integration tests all need the same things:
start a worker with given settings, wait until the consumer group has
committed everything in a topic (commits follow ClickHouse inserts, so zero
lag means every row is stored), read its peak RSS, and stop or kill it.
"""

from __future__ import annotations

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
        """The process's high-water resident set size (VmHWM), read while it runs."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process (all its threads) has used so far, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def rss_bytes(self) -> int:
        """The process's resident set size now (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

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
