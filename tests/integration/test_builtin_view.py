"""The built-in dashboards, served by a running worker, in a real headless Chromium.

The store holds two weeks of the regression-and-decay scenario, evaluated by
the shipped alert rules (as the worker's leader timer does); the worker serves its pages; Chromium
loads each one, logs the page's console to stderr, and writes the DOM and a
screenshot of the portfolio (kept as a test artefact under the test's tmp folder).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from support.net import free_port
from support.scenario_store import close_scenario, fixed_end, open_scenario

from alerts.evaluator import build_evaluator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARTEFACTS = Path("/tmp/productpulse-artefacts")


def chromium(url: str, out: Path, screenshot: Path | None = None) -> tuple[str, str]:
    """(DOM, console log) of ``url`` as headless Chromium renders it."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed (Debian package chromium)"
    args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
            "--v=0", "--window-size=1400,2000", f"--user-data-dir={out / 'profile'}"]  # fmt: skip
    if screenshot is not None:
        subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=True)
    done = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout, done.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]


def test_worker_serves_every_dashboard_page_to_a_real_browser(settings, start_worker, tmp_path):
    # The traffic ends at today's 00:00 UTC (a fixed hour, so the same data whenever the test runs): yesterday is
    # a complete day, today is the partial one the pages leave out - as on a live system, seen in the README's
    # screenshot.
    end = fixed_end() + timedelta(hours=11)
    scenario = open_scenario(settings.data_dir, users_per_product=150, end=end)
    # The evaluator as the worker's leader timer runs it, over the last two hours: it stores alert states,
    # scorecards and release verdicts - what the pages read.
    evaluator = build_evaluator(settings)
    for minutes in range(-120, 1, 5):
        report = evaluator.evaluate(scenario.client, end + timedelta(minutes=minutes))
        assert report.errors == []
    evaluator.close()
    close_scenario(scenario)

    served = settings.model_copy(update={"web_port": free_port()})
    worker = start_worker(served)
    base = f"http://127.0.0.1:{served.web_port}"
    shot = tmp_path / "portfolio.png"
    pages = {"/": "Product portfolio", "/products/search": "search", "/releases": "Release health"}
    doms = {}
    for path, title in pages.items():
        dom, log = chromium(base + path, tmp_path, screenshot=shot if path == "/" else None)
        assert console_errors(log) == [], (path, console_errors(log))
        assert f"<title>{title}" in dom or title in dom, path
        panels = re.findall(r'data-panel="([^"]+)"', dom)
        empty = re.findall(r'<section class="panel[^>]*data-panel="([^"]+)"[^>]*>(?:(?!</section>).)*class="empty"',
                           dom, flags=re.S)  # fmt: skip
        assert panels, path
        assert empty == [], f"{path}: panels without data: {empty}"
        doms[path] = dom
    assert worker.alive()
    worker.stop()

    # The decaying product is marked on the portfolio; no healthy product is.
    portfolio = unescape(doms["/"])
    marked = set(re.findall(r'data-product="([^"]+)"[^>]*>(?:(?!</).)*REDESIGN CANDIDATE', portfolio, flags=re.S))
    assert "REDESIGN CANDIDATE" in portfolio
    assert marked in (set(), {"profile"}), marked
    card = portfolio[portfolio.index("REDESIGN CANDIDATE") - 2000 : portfolio.index("REDESIGN CANDIDATE") + 200]
    assert "profile" in card
    for healthy in ("checkout", "feed", "billing"):
        assert f"{healthy}</b> REDESIGN" not in portfolio
    # The redesign evidence reads as sentences, not JSON, as Chromium shows it.
    evidence = re.search(r'data-panel="Redesign candidates and evidence".*?</section>', portfolio, flags=re.S)
    assert evidence, "no evidence panel"
    text = re.sub(r"<[^>]+>", " ", evidence.group(0))
    assert re.search(r"profile is a redesign candidate( since \S+)?:", text), text[:2000]
    assert re.search(r"scores \d+/100 .*against a floor of \d+", text), text[:2000]  # a dimension's own sentence
    assert "{" not in text and '"score"' not in text
    # Daily active users end on the last complete UTC day (yesterday), and say that today is left out.
    dau = re.search(r'data-panel="Daily active users".*?</section>', portfolio, flags=re.S)
    assert dau and "today (partial) is left out" in dau.group(0)
    assert re.findall(r'text-anchor="end">([^<]+)</text>', dau.group(0))[-1] == (end - timedelta(days=1)).strftime(
        "%m-%d 00:00"
    )
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 100_000
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTEFACTS / "portfolio.png")
