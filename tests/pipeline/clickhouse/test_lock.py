"""Embedded chDB serves one process: a second one gets a clear ClickHouseLocked, not an engine error."""

from __future__ import annotations

import subprocess
import sys

from pipeline import clickhouse
from pipeline.settings import Settings


def test_second_process_on_the_same_folder_is_refused_clearly(tmp_path):
    settings = Settings(data_dir=tmp_path)
    with clickhouse.opened(settings) as client:
        assert clickhouse.migrate(client, "pulse") == [m.version for m in clickhouse.MIGRATIONS]
        probe = (
            "from pipeline import clickhouse; from pipeline.settings import Settings; "
            f"clickhouse.connect(Settings(data_dir={str(tmp_path)!r}))"
        )
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        assert "ClickHouseLocked" in done.stderr and "in use by another process" in done.stderr
        assert "PULSE_CLICKHOUSE_DSN" in done.stderr
    # Released: another process may open it now, and migrating again changes nothing.
    probe = (
        "from pipeline import clickhouse; from pipeline.settings import Settings; "
        f"c = clickhouse.connect(Settings(data_dir={str(tmp_path)!r})); print(clickhouse.migrate(c, 'pulse'))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
