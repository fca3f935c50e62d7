"""Start and stop the local single-node Kafka (deploy/local/kafka.sh) from Python.

Used by ``pulse demo``, ``pulse bench`` and the test session so a fresh
machine needs no manual broker setup. The broker's port is taken from the
bootstrap address; ``start`` reports whether it started the broker, so the
caller stops only what it started.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"


def is_local(bootstrap: str) -> bool:
    """Whether the bootstrap servers are this machine (so the local broker is the one meant)."""
    return all(h.rsplit(":", 1)[0] in ("127.0.0.1", "localhost") for h in bootstrap.split(","))


def _run(action: str, bootstrap: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        raise FileNotFoundError(f"{SCRIPT} not found: run from a checkout of ProductPulse")
    env = {**os.environ, "PULSE_KAFKA_PORT": bootstrap.split(",")[0].rsplit(":", 1)[1]}
    return subprocess.run(
        ["bash", str(SCRIPT), action], check=check, text=True, capture_output=action == "status", env=env
    )


def is_running(bootstrap: str) -> bool:
    return _run("status", bootstrap, check=False).returncode == 0


def start(bootstrap: str) -> bool:
    """Start the local broker unless it runs already or the bootstrap is another machine.

    True when this call started it (and the caller should stop it).
    """
    if not is_local(bootstrap) or is_running(bootstrap):
        return False
    _run("start", bootstrap)
    return True


def stop(bootstrap: str) -> None:
    _run("stop", bootstrap)
