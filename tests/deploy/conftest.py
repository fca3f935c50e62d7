"""The image, built once per session with ``deploy/container/build.sh`` (its base cached per machine)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CA = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class Image:
    ref: str
    env: dict[str, str]  # CONTAINERS_CONF set as build.sh wrote it
    build_s: float

    def podman(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``podman run --rm IMAGE args...`` (the CA bundle mounted, as for anything that may reach a registry)."""
        return self.podman("run", "--rm", "-v", f"{CA}:{CA}:ro", self.ref, *args, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def image() -> Image:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "container" / "build.sh")], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    conf = next(line.split("=", 1)[1] for line in lines if line.startswith("containers_conf="))
    return Image(lines[-1], {**os.environ, "CONTAINERS_CONF": conf}, time.monotonic() - started)
