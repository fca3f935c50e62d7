"""The built-in view renders from the scenario store: every panel, escaped values, 404s, and a real Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support.dashboard_store import EVIL
from support.scenario_store import Scenario

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


class _Dom(HTMLParser):
    """Per panel (``section[data-panel]``) of a DOM: its text, its table rows (cell texts) and its SVG marks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.panels: dict[str, dict[str, Any]] = {}
        self._panel: dict[str, Any] | None = None
        self._depth = 0  # open <section>s inside the current panel
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and "data-panel" in a and self._panel is None:
            self._panel = self.panels.setdefault(str(a["data-panel"]), {"text": [], "rows": [], "marks": 0})
            self._depth = 0
        elif self._panel is not None:
            self._depth += tag == "section"
            if tag == "tr":
                self._row = []
            elif tag in ("td", "th") and self._row is not None:
                self._cell = []
            elif tag in ("polyline", "path", "rect") and (a.get("points") or a.get("d") or a.get("height")):
                self._panel["marks"] += 1

    def handle_endtag(self, tag: str) -> None:
        if self._panel is None:
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._panel["rows"].append(self._row)
            self._row = None
        elif tag == "section":
            if self._depth == 0:
                self._panel = None
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._panel is not None:
            self._panel["text"].append(data)
            if self._cell is not None:
                self._cell.append(data)


def test_headless_chromium_renders_the_portfolio_with_its_data(store: Scenario, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (Debian package chromium)"
    _, body = _get(store, "/")
    page = tmp_path / "portfolio.html"
    page.write_text(body, encoding="utf-8")
    png = tmp_path / "portfolio.png"
    args = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1800",
            f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    subprocess.run([*args, f"--screenshot={png}", page.as_uri()], capture_output=True, timeout=90, check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The DOM as Chromium parsed the page: a broken page (an unclosed tag, a panel swallowed by another, a
    # table or chart without its data) shows here, where the HTML string still looks right.
    dumped = subprocess.run(
        [*args, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90, check=True
    )
    dom = _Dom()
    dom.feed(dumped.stdout)
    titles = [p.title for p in portfolio(store.database).panels]
    assert list(dom.panels) == titles
    for title, panel in dom.panels.items():
        assert title in "".join(panel["text"])
    # Every chart draws its series, one mark per product at least; every product is in the legends.
    products = {str(p) for p in store.cfg.products}
    for title in ("Daily active users", "Sessions", "Crash-free sessions", "Error rate", "Active users in range"):
        assert dom.panels[title]["marks"] >= len(products), title
        assert products <= {p for p in products if p in "".join(dom.panels[title]["text"])}, title
    # The scores table shows each product's newest stored scores (read here straight from the table).
    newest = store.client.query(
        f"SELECT product, dimension, argMax(score, at) FROM {store.database}.product_scorecards FINAL "
        "GROUP BY product, dimension"
    ).result_rows
    want = {(product, dim): score for product, dim, score in newest}
    header, *rows = dom.panels["Dimension scores"]["rows"]
    assert header[:6] == ["product", "Business impact", "Customer experience", "Post-launch support", "Performance",
                          "Composite"]  # fmt: skip
    shown = {row[0]: row for row in rows}
    assert set(shown) == {product for product, _ in want}
    for product in products:
        for column, dim in enumerate(("business impact", "customer experience", "post-launch support", "performance")):
            assert float(shown[product][column + 1]) == pytest.approx(want[(product, dim)], abs=0.5), (product, dim)
    decaying = store.story["decaying_product"]
    assert "REDESIGN CANDIDATE" in shown[decaying] and "REDESIGN CANDIDATE" not in str(
        shown[store.story["regressing_product"]]
    )
    assert float(shown[decaying][2]) < 55 and float(shown[decaying][4]) < 55  # below floor: the candidate's why
    firing = [row[:2] for row in dom.panels["Firing alerts"]["rows"][1:]]
    assert ["RedesignCandidate", decaying] in firing


def test_redesign_evidence_reads_as_sentences(store: Scenario) -> None:
    _, body = _get(store, "/")
    evidence = _panels(body)["Redesign candidates and evidence"]
    decaying = store.story["decaying_product"]
    assert f"{decaying} is a redesign candidate since " in evidence
    assert "crash-free sessions fell from 98.50% to 94.00%." in evidence  # a dimension row's stored sentence
    assert "{" not in evidence and "&quot;" not in evidence and "<code>" not in evidence  # no JSON


def _x_labels(chart: str) -> list[str]:
    return re.findall(r'<text x="[\d.]+" y="\d+" text-anchor="(?:start|end)">([^<]+)</text>', chart)


def test_daily_lines_leave_the_partial_day_out(store: Scenario) -> None:
    """Ending the range mid-day: the day's lines stop at yesterday, and the chart says why."""
    data_end = store.cfg.start + store.cfg.span  # any hour of the day: the scenario ends where the clock is
    end = data_end.replace(hour=13) - timedelta(days=0 if data_end.hour >= 13 else 1)  # today's DAU: half a day
    assert store.cfg.start + timedelta(days=1) < end <= data_end
    status, _, body = render_page("/", {}, store.client, store.database, end)
    assert status == 200
    panels = _panels(body)
    dau = panels["Daily active users"]
    assert _x_labels(dau)[-1] == (end - timedelta(days=1)).strftime("%m-%d 00:00")
    assert "today (partial) is left out" in dau
    sessions = panels["Sessions"]
    last = datetime.strptime(f"{end.year}-{_x_labels(sessions)[-1]}", "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    assert last + timedelta(hours=3) <= end and "the current one (partial) is left out" in sessions


def test_release_rows_link_to_the_product_version_and_the_verdicts(store: Scenario) -> None:
    product, version = store.story["regressing_product"], store.story["regressing_version"]
    _, body = _get(store, "/releases")
    panels = _panels(body)
    assert f'<a href="/products/{product}?version={version}">{version}</a>' in panels["Regression verdicts"]
    assert f'<a href="/products/{product}?version={version}">{version}</a>' in panels["Versions side by side"]
    assert f'<a href="/releases?product={product}">{version}</a>' in panels["Releases"]
    status, _ = _get(store, "/releases", product=product)
    assert status == 200


def test_stats_and_scores_take_their_thresholds_colours(store: Scenario) -> None:
    _, body = _get(store, f"/products/{store.story['regressing_product']}")
    panels = _panels(body)
    assert re.search(r'<div class="stat" style="color:#(2e7d32|d35400|c0392b)">', panels["Crash-free users"])
    assert '<div class="stat">' in panels["Active users"]  # a count: no colour
    _, portfolio_page = _get(store, "/")
    scores = _panels(portfolio_page)["Dimension scores"]
    assert '<span style="color:#c0392b">' in scores and '<span style="color:#2e7d32">' in scores  # below, above floor
