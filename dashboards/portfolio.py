"""Product portfolio: every product's four dimension scores, the redesign candidates with evidence, trends."""

from __future__ import annotations

from dashboards import sql, thresholds
from dashboards.model import Annotation, Dashboard, Grid, Link, Panel, Variable
from pipeline import dashboard_uids

UID = dashboard_uids.PORTFOLIO
TO_PRODUCT = Link("product", "Open ${__value.raw}'s dashboard", dashboard_uids.PRODUCT, (("product", "product"),))

SCORE_LABELS = (
    ("business_impact", "Business impact"),
    ("customer_experience", "Customer experience"),
    ("post_launch_support", "Post-launch support"),
    ("performance", "Performance"),
    ("composite", "Composite"),
    ("dimensions_below_floor", "Dimensions below floor"),
    ("days_below", "Days below"),
    ("redesign_candidate", "Redesign candidate"),
    ("evaluated_at", "Evaluated at"),
)


def portfolio(database: str) -> Dashboard:
    g = Grid()
    scores = sql.scorecard_query(database)  # values: the four dimensions' columns, then the composite
    panels = (
        Panel(
            "Dimension scores",
            "table",
            (scores,),
            g.place(24, 8),
            unit="none",
            description="Each product's newest scorecard: one score per dimension (0-100), the composite, and "
            "whether it is a redesign candidate (below floor on at least two dimensions for a sustained period).",
            labels=SCORE_LABELS,
            highlight="redesign_candidate",
            empty="No scorecards yet: the alert evaluator writes them once it has run.",
            column_thresholds=tuple(
                (column, thresholds.for_score(dim))
                for column, dim in zip(scores.values[:5], (*sql.DIMENSIONS, "composite"), strict=True)
            ),
            links=(TO_PRODUCT,),
        ),
        Panel(
            "Redesign candidates and evidence",
            "table",
            (sql.candidates_query(database),),
            g.place(24, 8),
            unit="none",
            description="Products marked for redesign, the dimensions below their floor and the evaluator's evidence.",
            labels=(("days_below", "Days below floor"), ("in_words", "Evidence")),
            empty="No redesign candidates.",
            links=(TO_PRODUCT,),
        ),
        Panel(
            "Daily active users",
            "timeseries",
            sql.metric_queries(database, ["dau"], series=True, product=True),
            g.place(12, 8),
            description="Mean daily active users per product (unique users per UTC day).",
        ),
        Panel(
            "Sessions",
            "timeseries",
            sql.metric_queries(database, ["sessions"], series=True, product=True),
            g.place(12, 8),
            description="Sessions that ended, per product and time bucket.",
        ),
        Panel(
            "Crash-free sessions",
            "timeseries",
            sql.metric_queries(database, ["crash_free_sessions"], series=True, product=True),
            g.place(8, 8),
            unit="percentunit",
        ),
        Panel(
            "Error rate",
            "timeseries",
            sql.metric_queries(database, ["error_rate"], series=True, product=True),
            g.place(8, 8),
            unit="percentunit",
        ),
        Panel(
            "Mean dimension score",
            "timeseries",
            (sql.scorecard_trend_query(database),),
            g.place(8, 8),
            unit="none",
            description="Mean of the four dimension scores at each evaluation.",
            empty="No scorecards yet.",
        ),
        Panel(
            "Active users in range",
            "bar",
            sql.metric_queries(database, ["active_users"], product=True),
            g.place(12, 8),
            description="Distinct users in the selected time range (MAU over 30 days).",
            links=(
                Link(
                    "", "Open ${__data.fields.product}'s dashboard", dashboard_uids.PRODUCT, (("product", "product"),)
                ),
            ),
        ),
        Panel(
            "Firing alerts",
            "table",
            (sql.firing_alerts_query(database),),
            g.place(12, 8),
            unit="none",
            empty="No alert is firing.",
            links=(TO_PRODUCT,),
        ),
    )
    return Dashboard(
        UID,
        "ProductPulse - Product portfolio",
        "Every product in four dimensions: business impact, customer experience, post-launch support, performance.",
        "clickhouse",
        panels,
        variables=(Variable("product", "Product", sql.products_query(database), include_all=True),),
        annotations=(Annotation("Releases", sql.release_annotations_query(database)),),
    )
