"""The ``pulse`` command run as users run it: a child process, with its own stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


def pulse(data_dir: Path, *argv: str, stdout: int | IO[str] = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """``pulse ARGV --data-dir DATA_DIR`` in a child process (PULSE_* come from the test's clean environment)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *argv, "--data-dir", str(data_dir)],
        stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
