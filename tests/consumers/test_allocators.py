"""The worker's allocator settings: Arrow on the system allocator unless the environment says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import pyarrow as pa; from consumers.allocators import lean_allocators; "
    "lean_allocators(); print(pa.default_memory_pool().backend_name)"
)


def arrow_pool(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def test_arrow_uses_the_system_allocator_after_lean_allocators():
    assert arrow_pool() == "system"


def test_an_arrow_pool_chosen_in_the_environment_wins():
    assert arrow_pool(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"  # pyarrow's own default on Linux wheels
