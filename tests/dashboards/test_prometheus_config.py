"""The shipped Prometheus config and pipeline health rules pass the real promtool (Debian's Prometheus 2.42)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian package prometheus)"
    return subprocess.run([promtool, *args], cwd=PROM, capture_output=True, text=True, timeout=60, check=False)


def test_check_config() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 rule files found" in out.stdout + out.stderr


def test_check_rules() -> None:
    out = _promtool("check", "rules", "rules/pipeline.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "6 rules found" in out.stdout + out.stderr


def test_rule_unit_tests_pass_and_every_group_has_an_interval() -> None:
    tests = yaml.safe_load((PROM / "rules" / "pipeline_test.yml").read_text())
    assert all("interval" in t for t in tests["tests"])
    tested = {a["alertname"] for t in tests["tests"] for a in t["alert_rule_test"]}
    rules = {r["alert"] for g in yaml.safe_load((PROM / "rules" / "pipeline.yml").read_text())["groups"]
             for r in g["rules"]}  # fmt: skip
    assert rules == tested  # every alert has a test
    out = _promtool("test", "rules", "rules/pipeline_test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_scrapes_the_worker_and_the_collector() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {"127.0.0.1:9464", "127.0.0.1:8088"} <= targets
