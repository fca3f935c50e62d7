"""A leader job that runs long does not hold ingestion back (real broker, real chDB, a worker process).

The leader's timers - the health job computing scorecards and release
verdicts, the alert evaluator - ran on the sink's ClickHouse thread, so every
insert waited while they computed. They now run on a thread and client of
their own (:class:`consumers.extensions.LeaderJobs`). The worker here
(``tests.support.busy_job_worker``) has one job that holds its thread until
the events sent after it started are stored: on the sink's thread it would wait
for ever (its patience) and see none.
"""

from __future__ import annotations

import re

import pytest
from support.truth import emit_all, make_events

from pipeline.tools.workerproc import WorkerProcess

pytestmark = [pytest.mark.integration]

EVENTS = 2_000


def test_events_are_stored_while_a_leader_job_runs(settings, tmp_path):
    worker = WorkerProcess(
        settings, tmp_path / "busy.log", ("--expect", str(EVENTS), "--patience", "90"),
        module="tests.support.busy_job_worker",
    ).start()  # fmt: skip
    try:
        worker.wait_for_log("event=busy_job_started", timeout_s=120)
        emit_all(settings, make_events(EVENTS, ["checkout", "search"], seed=5))  # sent while the job runs
        worker.wait_for_log("event=busy_job_saw", timeout_s=120)
        seen = re.search(r"event=busy_job_saw rows=(\d+)", worker.log_text())
        assert seen is not None and int(seen.group(1)) == EVENTS, worker.log_text()[-3000:]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_text()[-3000:]
