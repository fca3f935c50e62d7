"""Faults: stop the worker - SIGKILL or SIGTERM - just before each step of the durable-batch protocol.

The doomed worker runs through a test-only entry point
(``python -m tests.support.stopping_worker``), whose step hook signals the
process itself on its first batch, just before step k of
:meth:`consumers.ingest.Ingestor.process`. SIGKILL must leave a state that a
restarted worker completes exactly; SIGTERM must end the worker with exit code 0,
having either finished the batch or left it uncommitted. Afterwards every total
equals the ground truth and every event is stored once.
"""

from __future__ import annotations

import pytest
from support.truth import assert_totals_equal, emit_all, ground_truth, make_events, stored_totals

from pipeline import clickhouse
from pipeline.kafka.emitter import Emitter
from pipeline.tools.workerproc import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.slow]

PRODUCTS = ["checkout", "search", "profile"]
STEPS = range(1, 8)


@pytest.mark.parametrize("signal_name", ["KILL", "TERM"])
@pytest.mark.parametrize("step", STEPS)
def test_stopping_before_any_step_keeps_every_total_exact(settings, start_worker, tmp_path, step, signal_name):
    events = make_events(3_000, PRODUCTS, seed=100 + step)
    bad = [b"{not json", b'{"type": "nope", "product": "checkout"}']  # so the batch has dead letters (steps 4, 6)
    emit_all(settings, events)
    with Emitter(settings) as em:
        for value in bad:
            em.send_raw(settings.events_topic, value)

    hook = ("--step", str(step), "--signal", signal_name)
    doomed = WorkerProcess(settings, tmp_path / "doomed.log", hook, module="tests.support.stopping_worker").start()
    assert doomed.proc is not None
    code = doomed.proc.wait(timeout=120)
    assert f"event=test_stop step={step}" in doomed.log_text()
    assert code == (-9 if signal_name == "KILL" else 0), doomed.log_text()[-3000:]

    survivor = start_worker(settings, name="survivor")
    survivor.wait_drained(settings.events_topic, timeout_s=120)
    survivor.stop()

    with clickhouse.opened(settings) as client:
        n_rows, n_ids = client.query("SELECT count(), uniqExact(event_id) FROM pulse.events FINAL").result_rows[0]
        positions = "SELECT DISTINCT kafka_partition, kafka_offset, pack_index FROM pulse.ingestion_errors"
        n_errors = client.query(f"SELECT count() FROM ({positions})").result_rows[0][0]
    assert (n_rows, n_ids) == (3_000, 3_000)
    assert n_errors == len(bad)
    assert_totals_equal(stored_totals(settings), ground_truth(events))
