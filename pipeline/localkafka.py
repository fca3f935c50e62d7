"""Start and stop the local single-node Kafka (deploy/local/kafka.sh) from Python.

Used by ``pulse demo`` and ``pulse bench`` so a fresh machine needs no manual
broker setup. ``start`` reports whether it started the broker, so the caller
stops only what it started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "local" / "kafka.sh"


def _run(action: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not SCRIPT.exists():
        raise FileNotFoundError(f"{SCRIPT} not found: run from a checkout of ProductPulse")
    return subprocess.run(["bash", str(SCRIPT), action], check=check, text=True, capture_output=action == "status")


def is_running() -> bool:
    return _run("status", check=False).returncode == 0


def start() -> bool:
    """Start the broker unless it runs already; True when this call started it."""
    if is_running():
        return False
    _run("start")
    return True


def stop() -> None:
    _run("stop")
