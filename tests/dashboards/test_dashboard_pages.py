"""The built-in view renders from the scenario store: every panel, escaped values, 404s, and a real Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from dashboard_store import EVIL
from scenario_store import Scenario

from dashboards.pages import CONTENT_TYPE, render_page
from dashboards.portfolio import portfolio
from dashboards.product import product_detail
from dashboards.releases import release_health
from pipeline import clickhouse
from pipeline.usecases import schema


def _get(store: Scenario, path: str, **query: str) -> tuple[int, str]:
    status, ctype, body = render_page(path, query, store.client, store.database, datetime.now(UTC))
    assert ctype == CONTENT_TYPE
    return status, body


def _panels(body: str) -> dict[str, str]:
    """Panel title -> its HTML (titles are escaped in the attribute)."""
    parts = re.findall(r'<section class="panel [a-z]+" [^>]*data-panel="([^"]*)">(.*?)</section>', body, re.S)
    return dict(parts)


def _assert_safe(body: str) -> None:
    assert "<script" not in body.lower()  # no script of ours, and EVIL's is escaped
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", body)  # nothing fetched from elsewhere
    assert "<link" not in body and "@import" not in body
    assert '<meta http-equiv="refresh" content="30">' in body


def test_portfolio_shows_every_panel_with_data_and_marks_the_candidate(store: Scenario) -> None:
    status, body = _get(store, "/")
    assert status == 200
    _assert_safe(body)
    panels = _panels(body)
    assert list(panels) == [p.title for p in portfolio(store.database).panels]
    assert all('class="empty"' not in html for html in panels.values()), [t for t, h in panels.items() if "empty" in h]
    assert all("<svg" in panels[t] for t in ("Daily active users", "Sessions", "Active users in range"))
    decaying = store.story["decaying_product"]
    card = re.search(rf'<div class="card candidate"><h3><a href="/products/{decaying}">{decaying}</a>.*?</div>', body)
    assert card and "REDESIGN CANDIDATE" in card.group(0)
    assert body.count('class="card candidate"') == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_product_page_every_panel_for_a_version(store: Scenario) -> None:
    product, version = store.story["regressing_product"], store.story["regressing_version"]
    for query in ({}, {"version": version}):
        status, body = _get(store, f"/products/{product}", **query)
        assert status == 200
        _assert_safe(body)
        panels = _panels(body)
        assert list(panels) == [p.title for p in product_detail(store.database).panels]
        assert not [t for t, h in panels.items() if 'class="empty"' in h]
    assert f"<h1>{product} {version}</h1>" in body


def test_release_page_shows_the_severe_verdict(store: Scenario) -> None:
    status, body = _get(store, "/releases")
    assert status == 200
    _assert_safe(body)
    panels = _panels(body)
    assert list(panels) == [p.title for p in release_health(store.database).panels]
    assert not [t for t, h in panels.items() if 'class="empty"' in h]
    verdicts = panels["Regression verdicts"]
    assert 'class="flagged"' in verdicts and "SEVERE" in verdicts and store.story["regressing_version"] in verdicts
    status, one = _get(store, "/releases", product=store.story["regressing_product"])
    assert status == 200 and "billing" not in _panels(one)["Versions side by side"]


def test_a_product_named_like_html_is_escaped_everywhere(store: Scenario) -> None:
    status, body = _get(store, "/products/" + quote(EVIL, safe=""))
    assert status == 200
    _assert_safe(body)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    _, releases = _get(store, "/releases", product=EVIL)
    _assert_safe(releases)


@pytest.mark.parametrize(
    ("path", "query"),
    [("/products/no-such-product", {}), ("/products/checkout", {"version": "9.9.9"}), ("/nothing", {}),
     ("/releases", {"product": "<b>nope</b>"})],
)  # fmt: skip
def test_unknown_pages_are_404(store: Scenario, path: str, query: dict[str, str]) -> None:
    status, body = _get(store, path, **query)
    assert status == 404 and "Not found" in body
    _assert_safe(body)
    assert "<b>nope</b>" not in body


def test_empty_store_renders_and_says_so(store: Scenario) -> None:
    clickhouse.migrate(store.client, "pulse_empty", migrations=schema.MIGRATIONS)
    status, _, body = render_page("/", {}, store.client, "pulse_empty", datetime.now(UTC))
    assert status == 200
    assert "No scorecards yet" in body and "No redesign candidates." in body
    status, _, body = render_page("/releases", {}, store.client, "pulse_empty", datetime.now(UTC))
    assert status == 200 and "No release verdicts yet" in body


def test_headless_chromium_renders_the_portfolio(store: Scenario, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (Debian package chromium)"
    _, body = _get(store, "/")
    page = tmp_path / "portfolio.html"
    page.write_text(body, encoding="utf-8")
    png = tmp_path / "portfolio.png"
    subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={png}", "--window-size=1400,1800", page.as_uri()],
        capture_output=True, timeout=90, check=True,
    )  # fmt: skip
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 100_000  # a blank 1400x1800 page is a few kB; charts and tables make it large
