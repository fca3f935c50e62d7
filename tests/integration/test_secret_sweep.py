"""Every ``pulse`` command, and the collector, keep every known secret out of stdout and stderr (issue 17, item 6).

The secrets (``support/known_secrets.py``: SASL password, DSN password, reader
password, write keys, web token, webhook token, PII key) are set in the
environment of each run, and the runs are made to fail where a message is most
tempted to quote its input: a ClickHouse server that refuses (the DSN carries
the password), a broker that refuses, settings that do not validate, a
malformed write-key list. The collector also runs for real and answers
requests made with good, wrong and missing write keys. The worker runs at
``--loglevel debug`` (the only command with a log level; its running-worker
case is in ``test_secrets_in_logs.py``). Commands run side by side, each
with a timeout (two failing ones also with ``--debug``, whose traceback is printed
unscrubbed): a command still running at its timeout is stopped and its
output checked all the same.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.known_secrets import DSN_PASSWORD, WRITE_KEYS, assert_clean, secret_env
from support.net import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted(str(p) for p in (ROOT / "alerts" / "rules").glob("*.yaml"))
RULE_TESTS = sorted(str(p) for p in (ROOT / "alerts" / "rules" / "tests").glob("*.yaml"))


def _commands(tmp: Path, closed: int) -> dict[str, tuple[list[str], float, dict[str, str]]]:
    """name -> (argv after ``pulse``, timeout s, extra environment) of every command `pulse --help` lists."""
    refused_broker = {"PULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}"}
    return {
        "help": (["--help"], 20, {}),
        "version": (["--version"], 20, {}),
        "config show": (["config", "show"], 20, {}),
        "config show json": (["config", "show", "--format", "json"], 20, {}),
        "worker, broker refuses": (["worker", "--loglevel", "debug"], 45, refused_broker),
        "worker, store refuses": (["worker", "--loglevel", "debug"], 45, {"PULSE_STORE_RETRY_TIMEOUT_S": "3"}),
        "worker, bad setting": (["worker", "--loglevel", "debug"], 20, {"PULSE_TOPIC_PARTITIONS": "many"}),
        "worker, short web token": (["worker", "--loglevel", "debug"], 20, {"PULSE_WEB_TOKEN": DSN_PASSWORD[:10]}),
        "collector, bad write keys": (["collector"], 20, {
            "PULSE_COLLECTOR_WRITE_KEYS": f"checkout={WRITE_KEYS[0]},{WRITE_KEYS[1]}"}),
        "collector, bad port": (["collector"], 20, {"PULSE_COLLECTOR_PORT": "http"}),
        "collector, broker refuses": (["collector", "--port", str(free_port())], 25, refused_broker),
        "db migrate": (["db", "migrate"], 30, {"PULSE_STORE_RETRY_TIMEOUT_S": "3"}),
        "db migrate, traceback": (["db", "migrate", "--debug"], 30, {"PULSE_STORE_RETRY_TIMEOUT_S": "3"}),
        "collector, bad write keys, traceback": (["collector", "--debug"], 20, {
            "PULSE_COLLECTOR_WRITE_KEYS": f"checkout={WRITE_KEYS[0]},{WRITE_KEYS[1]}"}),
        "demo": (["demo", "--duration", "1"], 30, {}),
        "bench": (["bench", "--events", "1000"], 30, {}),
        "release": (["release", "--product", "checkout", "--version", "1.0.0"], 30, refused_broker),
        "load": (["load", "--duration", "1", "--rate", "10"], 30, refused_broker),
        "naive": (["naive"], 20, {}),
        "alerts check": (["alerts", "check", *RULES], 30, {}),
        "alerts test": (["alerts", "test", *RULE_TESTS], 40, {}),
        "alerts run": (["alerts", "run"], 30, {}),
        "alerts backtest": (["alerts", "backtest", "--since", "1h"], 30, {}),
        "alerts status": (["alerts", "status"], 30, {}),
        "scorecard": (["scorecard"], 30, {}),
        "releases": (["releases"], 30, {}),
        "eval": (["eval", "--seeds", "1"], 20, {}),
        "dashboards build": (["dashboards", "build", "--out", str(tmp / "boards")], 30, {}),
        "metrics list": (["metrics", "list"], 20, {}),
        "metrics query": (["metrics", "query", "events", "active_users"], 30, {}),
    }  # fmt: skip


def _closed_port() -> int:
    return free_port()  # nothing listens on it: connections are refused at once


def test_no_command_prints_a_secret(settings, tmp_path):
    base = {**os.environ, **settings.to_env(), **secret_env(dsn_host=f"127.0.0.1:{_closed_port()}")}
    base["PYTHONPATH"] = str(ROOT)
    runs = {}
    for name, (argv, timeout, extra) in _commands(tmp_path, _closed_port()).items():
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *argv], env={**base, **extra}, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        runs[name] = (proc, time.monotonic() + timeout)
    outputs = {name: _finish(proc, deadline) for name, (proc, deadline) in runs.items()}
    for name, (code, text) in outputs.items():  # what each did, in the test's log
        print(f"--- {name}: exit {code}\n{text[-600:]}")
    for name, (_code, text) in outputs.items():
        assert_clean(text, f"the output of {name!r}")
    # The runs did what they were made for (else the sweep proves nothing).
    assert outputs["help"][0] == 0 and "config" in outputs["help"][1]
    assert outputs["worker, bad setting"][0] == 2 and "PULSE_TOPIC_PARTITIONS" in outputs["worker, bad setting"][1]
    assert outputs["collector, bad write keys"][0] != 0 and "product=key" in outputs["collector, bad write keys"][1]
    for name, (_code, text) in outputs.items():  # every command got past its arguments
        assert name == "help" or "usage: pulse" not in text, text
    assert outputs["db migrate"][0] != 0
    assert "Traceback" in outputs["db migrate, traceback"][1]
    shown = {row["setting"]: row for row in json.loads(outputs["config show json"][1])}
    assert shown["PULSE_CLICKHOUSE_DSN"]["value"].startswith("http://pulse:***@127.0.0.1:")
    assert shown["PULSE_CLICKHOUSE_DSN"]["source"] == "env"
    assert shown["PULSE_COLLECTOR_WRITE_KEYS"]["value"] == "checkout=***,search=***"
    assert shown["PULSE_TOPIC_PARTITIONS"]["source"] == "env"
    assert shown["PULSE_CONSUMER_GROUP"]["source"] == "env"
    assert shown["PULSE_GRAFANA_URL"] == {"setting": "PULSE_GRAFANA_URL", "value": None, "source": "default"}


def test_a_running_collector_prints_no_secret(settings, tmp_path):
    port = free_port()
    env = {**os.environ, **settings.to_env(), **secret_env(), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "collector", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        answers = []
        deadline = time.monotonic() + 30
        event = {"type": "request", "product": "checkout", "version": "1.0.0", "user_id": "u1",
                 "operation": "GET /", "latency_ms": 5.0, "status_code": 200,
                 "ts": datetime.now(UTC).isoformat()}  # fmt: skip
        for key in (WRITE_KEYS[0], WRITE_KEYS[1], WRITE_KEYS[0] + "x", None):
            while True:
                try:
                    answers.append(_post(port, key, [event]))
                    break
                except urllib.error.URLError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
        answers.append(_post(port, WRITE_KEYS[0], [{**event, "latency_ms": "slow"}]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    code, text = _finish(proc, time.monotonic() + 15)
    assert answers[0][0] == 202 and answers[1][0] == 403 and answers[2][0] == 401 and answers[3][0] == 401, answers
    assert answers[4][0] == 400
    assert_clean(text, "the collector's output")
    for status, body in answers:
        assert_clean(body, f"a {status} answer")


def _post(port: int, key: str | None, events: list[dict]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events", data=json.dumps({"events": events}).encode(), method="POST",
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _finish(proc: subprocess.Popen[str], deadline: float) -> tuple[int | None, str]:
    """The exit code (None if it had to be stopped) and everything it printed."""
    try:
        out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        return None, out
