"""Release health: versions side by side (adoption, crash-free rate, latency, errors) and regression verdicts."""

from __future__ import annotations

from dashboards import sql, thresholds
from dashboards.model import Annotation, Dashboard, Grid, Link, Panel, Variable
from pipeline import dashboard_uids

UID = dashboard_uids.RELEASES
BY_VERSION = ("product", "version")
# A version opens the product's dashboard for that version; a release opens its verdicts (this dashboard, the
# product chosen: the "Regression verdicts" table then lists that product's releases, each signal in words).
TO_VERSION = Link("version", "${__data.fields.product} ${__value.raw} on the product dashboard", dashboard_uids.PRODUCT,
                  (("product", "product"), ("version", "version")))  # fmt: skip
TO_VERDICTS = Link("version", "Verdicts of ${__data.fields.product} releases", UID, (("product", "product"),))
_COLOURED = ("crash_free_sessions", "crash_free_users", "latency_p95_ms", "error_rate")


def release_health(database: str) -> Dashboard:
    g = Grid()
    side_by_side = sql.metric_queries(
        database,
        ["release_adoption", "sessions", "crash_free_sessions", "crash_free_users", "latency_p95_ms", "error_rate"],
        by=BY_VERSION,
        product=True,
    )
    panels = (
        Panel(
            "Versions side by side",
            "table",
            side_by_side,
            g.place(24, 9),
            unit="none",
            description="Per version in the time range: its share of the product's sessions, crash-free rates, "
            "p95 latency and error rate. A version opens the product dashboard for it.",
            column_thresholds=tuple((f"metric_{m}", thresholds.for_metric(m)) for m in _COLOURED),
            links=(TO_VERSION,),
        ),
        Panel(
            "Regression verdicts",
            "table",
            (sql.verdicts_query(database),),
            g.place(24, 9),
            unit="none",
            description="Each release against its predecessor over equal bake time, one row per signal.",
            highlight="severe",
            links=(TO_VERSION,),
            empty="No release verdicts yet: the evaluator writes them once a release has baked.",
        ),
        Panel(
            "Adoption by version",
            "timeseries",
            sql.metric_queries(database, ["release_adoption"], by=BY_VERSION, series=True, product=True),
            g.place(12, 8),
            unit="percentunit",
        ),
        Panel(
            "Crash-free sessions by version",
            "timeseries",
            sql.metric_queries(database, ["crash_free_sessions"], by=BY_VERSION, series=True, product=True),
            g.place(12, 8),
            unit="percentunit",
        ),
        Panel(
            "Latency p95 by version",
            "timeseries",
            sql.metric_queries(database, ["latency_p95_ms"], by=BY_VERSION, series=True, product=True),
            g.place(12, 8),
            unit="ms",
        ),
        Panel(
            "Error rate by version",
            "timeseries",
            sql.metric_queries(database, ["error_rate"], by=BY_VERSION, series=True, product=True),
            g.place(12, 8),
            unit="percentunit",
        ),
        Panel(
            "Releases",
            "table",
            (sql.releases_query(database),),
            g.place(24, 7),
            unit="none",
            description="Every announced release. A version opens its regression verdicts.",
            links=(TO_VERDICTS,),
        ),
    )
    return Dashboard(
        UID,
        "ProductPulse - Release health",
        "Versions side by side and the evaluator's regression verdicts.",
        "clickhouse",
        panels,
        variables=(Variable("product", "Product", sql.products_query(database), include_all=True),),
        annotations=(Annotation("Releases", sql.release_annotations_query(database)),),
    )
