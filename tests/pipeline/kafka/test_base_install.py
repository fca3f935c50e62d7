"""An emitting service installs the base package alone: the emitter and the event models import without the worker.

Builds the project in a fresh virtualenv with ``pip install .`` (no extras) and
imports the SDK there, then checks that nothing of the worker extra came along.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
WORKER_ONLY = ("faust", "clickhouse_connect", "chdb", "prometheus_client", "aiohttp", "rich", "yaml")

pytestmark = pytest.mark.slow

PROBE = f"""
import importlib.util, sys
from pipeline.kafka.emitter import Emitter, InvalidEvent
from pipeline.events import EVENT_ADAPTER, encode_event
from pipeline.settings import Settings
event = EVENT_ADAPTER.validate_python({{"type": "session_started", "product": "p", "version": "1",
    "ts": "2026-11-25T10:00:00Z", "user_id": "u"}})
assert encode_event(event).startswith(b"{{")
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{{s.getsockname()[1]}}"
em = Emitter(Settings(kafka_bootstrap=dead), queue_size=1, on_error=lambda exc, events: None)
em.send(event)
em.send(event)  # the queue is full: dropped and counted, without prometheus_client
assert em.dropped == 1, em.dropped
em.close(timeout=0)
loaded = sorted(m for m in {WORKER_ONLY!r} if m in sys.modules)
installed = sorted(m for m in {WORKER_ONLY!r} if importlib.util.find_spec(m) is not None)
print("loaded", loaded, "installed", installed)
assert not loaded and not installed, (loaded, installed)
from pipeline.cli.main import build_parser
build_parser().format_help()  # the `pulse` command an emit-only install gets parses without the worker extra
assert not [m for m in {WORKER_ONLY!r} if m in sys.modules]
"""


def test_base_install_imports_the_emitter_and_event_models(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("pipeline", "consumers", "alerts", "dashboards"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    # Run from an empty folder, so the import comes from the installed package and not this checkout.
    probe = subprocess.run([str(python), "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert "loaded [] installed []" in probe.stdout
