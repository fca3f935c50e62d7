"""The shipped Alertmanager config passes the real amtool: syntax, routes to the right receivers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
# Where each severity a shipped rule (product rules or the pipeline's Prometheus rules) uses must land.
SEVERITY_RECEIVER = {"page": "oncall", "critical": "oncall", "warning": "default", "ticket": "default"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30, check=False)


def test_amtool_check_config_passes() -> None:
    r = amtool("check-config", str(CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout and "3 inhibit rules" in r.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "product=x"], "oncall"),
        (["severity=page", "audience=oncall", "product=search", "alertname=ReleaseRegression"], "oncall"),
        (["audience=pm", "product=x"], "pm"),
        (["audience=pm", "severity=ticket", "product=profile", "alertname=RedesignCandidate"], "pm"),
        (["severity=ticket", "audience=oncall", "product=x"], "default"),
        (["severity=ticket", "audience=oncall", "product=search", "alertname=ReleaseWorse"], "default"),
    ],
)
def test_routes(labels: list[str], receiver: str) -> None:
    r = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receiver


def shipped_severities() -> set[str]:
    files = [*(ROOT / "alerts" / "rules").glob("*.yaml"), ROOT / "deploy" / "prometheus" / "rules" / "pipeline.yml"]
    return {
        rule["labels"]["severity"]
        for path in files
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        for rule in group.get("rules", [])
        if "severity" in rule.get("labels", {})
    }


def test_every_shipped_severity_has_an_expected_receiver() -> None:
    assert shipped_severities() <= set(SEVERITY_RECEIVER), shipped_severities() - set(SEVERITY_RECEIVER)


@pytest.mark.parametrize(("severity", "receiver"), sorted(SEVERITY_RECEIVER.items()))
def test_each_severity_routes_to_its_receiver(severity: str, receiver: str) -> None:
    """The pipeline's own ``critical`` alerts (worker down, ingestion stalled) page on-call, like product pages."""
    r = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
               f"severity={severity}", "alertname=PulseWorkerDown")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receiver


def test_a_wrong_expectation_fails_so_the_route_test_means_something() -> None:
    r = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=pm", "severity=page")
    assert r.returncode != 0


def test_inhibition_mutes_pm_tickets_of_the_paged_product() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="page"'], "target_matchers": ['audience="pm"'], "equal": ["product"]},
        {
            "source_matchers": ['alertname="ReleaseRegression"'],
            "target_matchers": ['alertname="ReleaseWorse"'],
            "equal": ["product", "version"],
        },
        {
            "source_matchers": ['severity="page"', 'slo=~".+"'],
            "target_matchers": ['severity="ticket"', 'slo=~".+"'],
            "equal": ["product", "slo"],
        },
    ]
    assert config["route"]["group_by"] == ["alertname", "product"]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("http://127.0.0.1:"), hook
