"""Secrets never reach the worker's output, even at --loglevel debug (issue 17, item 6 in part).

kafka-python dumps its client configuration - SASL password included - at
DEBUG, so the ``kafka`` and ``aiokafka`` loggers stay at INFO whatever the
worker's level. A notifier that fails says so without the URL, which may carry
a token. Both are checked on a real worker: one whose start fails against the
broker (SASL asked of a PLAINTEXT listener), one that runs and fails to notify.
Every other command, and the collector, are swept in ``test_secret_sweep.py``
with the same known secrets (``support/known_secrets.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import SecretStr
from support.known_secrets import SASL_PASSWORD as PASSWORD
from support.known_secrets import WEBHOOK_TOKEN, assert_clean
from support.truth import emit_all, make_events

from pipeline.tools.workerproc import WorkerProcess

pytestmark = pytest.mark.integration

ALWAYS_FIRES = """
groups:
  - name: probe
    rules:
      - alert: AnyEvents
        metric: events
        window: 15m
        op: ">"
        threshold: 0
        by: [product]
        labels: {severity: ticket}
        annotations: {summary: "{{ product }} has events"}
"""


def test_a_failing_start_at_debug_does_not_log_the_sasl_password(settings):
    failing = settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_PLAINTEXT",  # the local broker's listener is PLAINTEXT: no bootstrap
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": "pulse",
            "kafka_sasl_password": SecretStr(PASSWORD),
            "alert_webhook_url": SecretStr(f"https://hooks.example/T0/{WEBHOOK_TOKEN}"),
        }
    )
    env = {**os.environ, **failing.to_env()}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "worker", "--loglevel", "debug"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode != 0
    assert "bootstrap" in (done.stdout + done.stderr).lower()  # it did try the broker, at debug
    assert_clean(done.stdout + done.stderr)


def test_a_running_worker_at_debug_logs_neither_password_nor_webhook_token(settings, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "probe.yaml").write_text(ALWAYS_FIRES)
    settings = settings.model_copy(
        update={
            "kafka_sasl_password": SecretStr(PASSWORD),
            "alert_rules_dir": rules,
            "alert_eval_interval_s": 2.0,
            # no scheme: urllib's error would quote the whole URL, token and all
            "alert_webhook_url": SecretStr(f"hooks.example/T0/{WEBHOOK_TOKEN}"),
        }
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log", args=("worker", "--loglevel", "debug")).start()
    try:
        worker.wait_ready()
        emit_all(settings, make_events(50, ["checkout"], seed=9))
        worker.wait_drained(settings.events_topic, timeout_s=120)
        worker.wait_for_log("event=notification_failed notifier=webhook", timeout_s=60)
    finally:
        worker.stop()
    text = worker.log_text()
    assert "[DEBUG]" in text  # the worker did run at debug (Faust's log format)
    assert_clean(text)
