"""The built-in dashboard view: the same definitions as the Grafana JSON, rendered as HTML pages.

:func:`render_page` is a pure function of (path, query string, ClickHouse client,
database, now): the worker's web server calls it and sends back what it returns.
Pages: ``/`` (portfolio), ``/products/{product}`` (``?version=`` optional) and
``/releases`` (``?product=`` optional); anything else, or a product or version
without data in the last 14 days, is a 404 page.

Guarantees: every panel's SQL is the dashboard's own (:mod:`dashboards.sql`),
expanded with the plugin's macros, with variable values passed as query
parameters, never spliced into SQL; every value is HTML-escaped; charts are
inline SVG; the page has no script and requests nothing else (styles are
inline); it refreshes itself every 30 seconds; an empty panel says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from dashboards import svg
from dashboards.errors import NotFound
from dashboards.macros import ALL, VarValue, bind
from dashboards.model import Dashboard, Link, Panel, Query, Step
from dashboards.portfolio import portfolio
from dashboards.product import product_detail
from dashboards.releases import release_health
from dashboards.sql import partial_bucket_note, products_query, unit_of, versions_query
from pipeline import dashboard_uids

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

CONTENT_TYPE = "text/html; charset=utf-8"
RANGE = timedelta(days=14)
INTERVAL_S = 3 * 3600  # ~112 points over the range
REFRESH_S = 30

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Data:
    """A panel's rows: its queries' results merged on their key columns."""

    columns: list[str]
    rows: list[Row]


def _run(client: Client, q: Query, now: datetime, variables: Mapping[str, VarValue]) -> list[Row]:
    sql, params = bind(q.text, now - RANGE, now, INTERVAL_S, variables)
    return [tuple(r) for r in client.query(sql, parameters=params).result_rows]


def panel_data(client: Client, panel: Panel, now: datetime, variables: Mapping[str, VarValue]) -> Data:
    """Run a panel's queries; several queries (one per catalog source) are joined on their keys."""
    if len(panel.queries) == 1:
        q = panel.queries[0]
        return Data(list(q.columns), _run(client, q, now, variables))
    keys = panel.queries[0].keys
    merged: dict[Row, dict[str, Any]] = {}
    values: list[str] = []
    for q in panel.queries:
        values += list(q.values)
        for row in _run(client, q, now, variables):
            merged.setdefault(tuple(row[: len(keys)]), {}).update(zip(q.values, row[len(keys) :], strict=True))
    rows = [k + tuple(v.get(c, math.nan) for c in values) for k, v in sorted(merged.items(), key=lambda kv: kv[0])]
    return Data(list(keys) + values, rows)


# --- panels ---


def _product_link(name: object) -> str:
    text = escape(str(name))
    return f'<a href="/products/{escape(quote(str(name), safe=""))}">{text}</a>'


def _href(link: Link, row: Mapping[str, object]) -> str | None:
    """The built-in page a Grafana data link stands for (same dashboard, same variables), or None."""
    values = {name: str(row[column]) for name, column in link.variables}
    product = quote(values.get("product", ""), safe="")
    if link.uid == dashboard_uids.PRODUCT and product:
        version = values.get("version")
        return f"/products/{product}" + (f"?version={quote(version, safe='')}" if version else "")
    if link.uid == dashboard_uids.RELEASES:
        return f"/releases?product={product}" if product else "/releases"
    if link.uid == dashboard_uids.PORTFOLIO:
        return "/"
    return None


def _cell(panel: Panel, column: str, value: object, row: Mapping[str, object]) -> str:
    if column == "product":
        return _product_link(value)
    link = next((link for link in panel.links if link.column == column), None)
    href = _href(link, row) if link else None
    if href is not None:
        return f'<a href="{escape(href)}">{escape(svg.fmt(value, unit_of(column) or panel.unit))}</a>'
    if column == panel.highlight:
        flagged = value == 1
        word = "REDESIGN CANDIDATE" if column == "redesign_candidate" else "SEVERE"
        return f'<span class="badge">{word}</span>' if flagged else '<span class="ok">no</span>'
    text = escape(svg.fmt(value, unit_of(column) or panel.unit))
    css = colour(dict(panel.column_thresholds).get(column, ()), value)
    return f'<span style="color:{css}">{text}</span>' if css else text


def _table(panel: Panel, data: Data) -> str:
    head = "".join(f"<th>{escape(panel.label(c))}</th>" for c in data.columns)
    body = []
    flag_at = data.columns.index(panel.highlight) if panel.highlight in data.columns else -1
    for row in data.rows:
        cls = ' class="flagged"' if flag_at >= 0 and row[flag_at] == 1 else ""
        named = dict(zip(data.columns, row, strict=True))
        cells = "".join(f"<td>{_cell(panel, c, v, named)}</td>" for c, v in named.items())
        body.append(f"<tr{cls}>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def series_of(data: Data, keys: Sequence[str]) -> list[tuple[str, list[svg.Point]]]:
    """Split time-series rows into named series: one per (group key values, value column)."""
    n_keys = len(keys)
    groups: dict[str, list[svg.Point]] = {}
    value_columns = data.columns[n_keys:]
    for row in data.rows:
        label = " ".join(str(v) for v in row[1:n_keys])
        for column, value in zip(value_columns, row[n_keys:], strict=True):
            name = " ".join(x for x in (label, column.removeprefix("metric_") if len(value_columns) > 1 else "") if x)
            points = groups.setdefault(name or column.removeprefix("metric_"), [])
            if isinstance(value, int | float) and not math.isnan(value):  # merged sources leave NaN holes
                points.append((svg.epoch(row[0]), float(value)))
    return list(groups.items())


_COLOURS = {"green": "#2e7d32", "orange": "#d35400", "red": "#c0392b"}


def colour(steps: Sequence[Step], value: object) -> str | None:
    """The colour Grafana gives ``value`` under absolute thresholds (the last step it reaches), as CSS."""
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    found = None
    for start, name in steps:
        if start is None or value >= start:
            found = name
    return _COLOURS.get(found or "")


def _stat(panel: Panel, data: Data) -> str:
    value = [r[-1] for r in data.rows][-1]
    css = colour(panel.thresholds, value)
    style = f' style="color:{css}"' if css else ""
    return f'<div class="stat"{style}>{escape(svg.fmt(value, panel.unit))}</div>'


def _bar(panel: Panel, data: Data) -> str:
    n_keys = len(panel.queries[0].keys)
    items = [(" ".join(str(v) for v in r[:n_keys][-1:]), float(r[-1])) for r in data.rows]
    return svg.bar_chart(items, panel.unit)


def _has_values(data: Data, n_keys: int) -> bool:
    for row in data.rows:
        for v in row[n_keys:]:
            if not (isinstance(v, float) and math.isnan(v)):
                return True
    return False


def _partial_note(panel: Panel) -> str:
    """Says why a line stops before the right edge: its queries leave the partial bucket out (sql.complete_buckets)."""
    note = partial_bucket_note(panel.queries)
    return f'<p class="muted partial">{escape(note)}</p>' if note else ""


def render_panel(panel: Panel, data: Data) -> str:
    n_keys = len(panel.queries[0].keys) if panel.queries else 0
    if not data.rows or (panel.kind != "table" and not _has_values(data, n_keys)):
        body = f'<p class="empty">{escape(panel.empty)}</p>'
    elif panel.kind == "timeseries":
        body = svg.line_chart(series_of(data, panel.queries[0].keys), panel.unit) + _partial_note(panel)
    elif panel.kind == "stat":
        body = _stat(panel, data)
    elif panel.kind == "bar":
        body = _bar(panel, data)
    else:
        body = _table(panel, data)
    help_text = f'<p class="help">{escape(panel.description)}</p>' if panel.description else ""
    return (
        f'<section class="panel {panel.kind}" style="grid-column: span {panel.grid.w}" '
        f'data-panel="{escape(panel.title)}"><h2>{escape(panel.title)}</h2>{help_text}{body}</section>'
    )


# --- pages ---

_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1d2b3a;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
header a{color:#cfe3ff;text-decoration:none}header h1{font-size:18px;margin:0}
main{padding:16px 20px}.grid{display:grid;grid-template-columns:repeat(24,1fr);gap:12px}
.panel{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 12px;min-width:0}
.panel h2{font-size:14px;margin:0 0 6px}.help,.muted{color:#666;font-size:12px;margin:0 0 6px}
.empty{color:#666;font-style:italic}.stat{font-size:28px;font-weight:600;color:#1f4e79}
.scroll{max-height:420px;overflow:auto}table{border-collapse:collapse;width:100%;font-size:12px}
th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f7f7f9}
tr.flagged td{background:#fde2e1}.badge{background:#c0392b;color:#fff;border-radius:3px;padding:1px 6px;
font-weight:700;font-size:11px;white-space:nowrap}.ok{color:#2e7d32}code{font-size:11px;word-break:break-all}
svg text{font-size:10px;fill:#555}.legend{list-style:none;padding:0;margin:4px 0 0;font-size:12px;
display:flex;flex-wrap:wrap;gap:4px 12px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}.card{background:#fff;border:1px solid #dde1e6;
border-radius:6px;padding:10px 12px;min-width:230px}.card.candidate{border:2px solid #c0392b;background:#fff5f4}
.card h3{margin:0 0 4px;font-size:15px}.scores{font-size:12px;color:#333}
"""


def _page(title: str, body: str, nav_products: Sequence[str], now: datetime, status: int = 200) -> tuple[int, str, str]:
    links = " ".join(_product_link(p) for p in nav_products)
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{REFRESH_S}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} - ProductPulse</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>ProductPulse</h1><a href="/">Portfolio</a><a href="/releases">Releases</a>'
        f'<span>{links}</span><span class="muted" style="color:#9fb3c8">last 14 days to '
        f"{escape(now.strftime('%Y-%m-%d %H:%M UTC'))} - refreshes every {REFRESH_S}s</span></header>"
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>\n"
    )
    return status, CONTENT_TYPE, html


def _grid(
    dashboard: Dashboard, client: Client, now: datetime, variables: Mapping[str, VarValue]
) -> tuple[str, dict[str, Data]]:
    data = {p.title: panel_data(client, p, now, variables) for p in dashboard.panels}
    panels = "".join(render_panel(p, data[p.title]) for p in dashboard.panels)
    return f'<div class="grid">{panels}</div>', data


def _options(client: Client, q: Query, now: datetime, variables: Mapping[str, VarValue]) -> list[str]:
    return [str(r[0]) for r in _run(client, q, now, variables)]


def _cards(data: dict[str, Data], products: Sequence[str]) -> str:
    """Portfolio summary: per product, its scores, candidate mark and DAU / sessions sparklines."""
    scores = data["Dimension scores"]
    by_product = {r[0]: dict(zip(scores.columns, r, strict=True)) for r in scores.rows}
    trends = {name: dict(series_of(data[name], ("t", "product"))) for name in ("Daily active users", "Sessions")}
    cards = []
    for product in products:
        s = by_product.get(product)
        candidate = bool(s and s["redesign_candidate"] == 1)
        badge = '<span class="badge">REDESIGN CANDIDATE</span>' if candidate else ""
        if s:
            dims = " · ".join(
                f"{escape(label)} {escape(svg.fmt(s[col], 'none'))}"
                for col, label in (("business_impact", "BI"), ("customer_experience", "CX"),
                                   ("post_launch_support", "Support"), ("performance", "Perf"))
            )  # fmt: skip
        else:
            dims = "no scorecard yet"
        sparks = "".join(
            f'<div class="muted">{escape(name)} {svg.sparkline(trends[name].get(product, []))}</div>' for name in trends
        )
        cls = "card candidate" if candidate else "card"
        cards.append(f'<div class="{cls}"><h3>{_product_link(product)} {badge}</h3><div class="scores">{dims}</div>'
                     f"{sparks}</div>")  # fmt: skip
    return f'<div class="cards">{"".join(cards)}</div>'


def render_page(
    path: str, query: Mapping[str, str], client: Client, database: str, now: datetime
) -> tuple[int, str, str]:
    """(status, content type, body) of a built-in dashboard page for ``path`` and its query string."""
    products = _options(client, products_query(database), now, {})
    try:
        if path in ("/", ""):
            board = portfolio(database)
            grid, data = _grid(board, client, now, {"product": ALL})
            return _page("Product portfolio", _cards(data, products) + grid, products, now)
        if path == "/releases":
            product = query.get("product") or ALL
            if product != ALL and product not in products:
                raise NotFound(f"no product {product!r} with data in the last 14 days")
            grid, _ = _grid(release_health(database), client, now, {"product": product})
            title = "Release health" + (f": {product}" if product != ALL else "")
            return _page(title, grid, products, now)
        if path.startswith("/products/") and path.count("/") == 2:
            product = unquote(path.removeprefix("/products/"))
            if product not in products:
                raise NotFound(f"no product {product!r} with data in the last 14 days")
            versions = _options(client, versions_query(database), now, {"product": product})
            version = query.get("version") or ALL
            if version != ALL and version not in versions:
                raise NotFound(f"product {product!r} has no version {version!r} with data in the last 14 days")
            grid, _ = _grid(product_detail(database), client, now, {"product": product, "version": version})
            picker = " ".join(
                f'<a href="/products/{escape(quote(product, safe=""))}?version={escape(quote(v, safe=""))}">'
                f"{escape(v)}</a>"
                for v in versions
            )
            head = (
                f'<p class="muted">Versions: <a href="/products/{escape(quote(product, safe=""))}">all</a> {picker}</p>'
            )
            title = f"{product}" + (f" {version}" if version != ALL else "")
            return _page(title, head + grid, products, now)
        raise NotFound(f"no page at {path!r}")
    except NotFound as exc:
        body = f'<p class="empty">{escape(str(exc))}</p><p><a href="/">Back to the portfolio</a></p>'
        return _page("Not found", body, products, now, status=404)
