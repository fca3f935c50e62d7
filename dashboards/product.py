"""Product detail (variables product, version): engagement, quality, performance, business, customers, support."""

from __future__ import annotations

from dashboards import sql, thresholds
from dashboards.model import Annotation, Dashboard, Grid, Panel, Variable
from pipeline import dashboard_uids

UID = dashboard_uids.PRODUCT

_STATS = (
    ("Active users", "active_users", "short"),
    ("Stickiness (DAU / users)", "stickiness", "percentunit"),
    ("Crash-free sessions (window)", "crash_free_sessions", "percentunit"),
    ("Crash-free users", "crash_free_users", "percentunit"),
    ("Error rate (window)", "error_rate", "percentunit"),
    ("Revenue (window)", "revenue", "currencyUSD"),
    ("NPS (window)", "nps", "none"),
    ("CSAT (window)", "csat", "none"),
    ("Task success rate (window)", "task_success_rate", "percentunit"),
    ("Latency p95 (window)", "latency_p95_ms", "ms"),
    ("Tickets opened", "tickets_opened", "short"),
    ("Open tickets", "open_tickets", "short"),
)

_SERIES = (
    ("Daily active users", ["dau"], "short", 12),
    ("Sessions", ["sessions_started", "sessions"], "short", 12),
    ("Crash-free sessions and users", ["crash_free_sessions", "crash_free_users"], "percentunit", 12),
    ("Task success rate", ["task_success_rate"], "percentunit", 12),
    ("Latency p50 / p95 / p99", ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"], "ms", 12),
    ("Error rate", ["error_rate"], "percentunit", 12),
    ("Conversions", ["conversions"], "short", 8),
    ("Revenue", ["revenue"], "currencyUSD", 8),
    ("NPS", ["nps"], "none", 8),
    ("CSAT", ["csat"], "none", 8),
    ("Support tickets", ["tickets_opened", "tickets_resolved"], "short", 8),
)


def product_detail(database: str) -> Dashboard:
    g = Grid()
    panels = [
        Panel(
            title,
            "stat",
            sql.metric_queries(database, [name], product=True, version=True),
            g.place(4, 4),
            unit,
            thresholds=thresholds.for_metric(name),
        )
        for title, name, unit in _STATS
    ]
    g.newline()
    panels += [
        Panel(title, "timeseries", sql.metric_queries(database, names, series=True, product=True, version=True),
              g.place(w, 8), unit)
        for title, names, unit, w in _SERIES
    ]  # fmt: skip
    panels.append(
        Panel(
            "Feature adoption",
            "bar",
            sql.metric_queries(database, ["feature_adoption"], by=("product", "feature"), product=True, version=True),
            g.place(8, 8),
            "percentunit",
            description="Feature users / the product's active users in the time range.",
        )
    )
    return Dashboard(
        UID,
        "ProductPulse - Product detail",
        "One product (and optionally one version): engagement, quality, performance, business and support.",
        "clickhouse",
        tuple(panels),
        variables=(
            Variable("product", "Product", sql.products_query(database)),
            Variable("version", "Version", sql.versions_query(database), include_all=True),
        ),
        annotations=(Annotation("Releases", sql.release_annotations_query(database)),),
    )
