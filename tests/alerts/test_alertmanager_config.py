"""The shipped Alertmanager config passes the real amtool: syntax, routes to the right receivers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=30, check=False)


def test_amtool_check_config_passes() -> None:
    r = amtool("check-config", str(CONFIG))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout and "1 inhibit rules" in r.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "product=x"], "oncall"),
        (["severity=page", "audience=oncall", "product=search", "alertname=ReleaseRegression"], "oncall"),
        (["audience=pm", "product=x"], "pm"),
        (["audience=pm", "severity=ticket", "product=profile", "alertname=RedesignCandidate"], "pm"),
        (["severity=ticket", "audience=oncall", "product=x"], "default"),
    ],
)
def test_routes(labels: list[str], receiver: str) -> None:
    r = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == receiver


def test_a_wrong_expectation_fails_so_the_route_test_means_something() -> None:
    r = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=pm", "severity=page")
    assert r.returncode != 0


def test_inhibition_mutes_pm_tickets_of_the_paged_product() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="page"'], "target_matchers": ['audience="pm"'], "equal": ["product"]}
    ]
    assert config["route"]["group_by"] == ["alertname", "product"]
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert hook["url"].startswith("http://127.0.0.1:"), hook
