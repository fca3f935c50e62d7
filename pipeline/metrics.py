"""The metric catalog: every product metric by name, with its definition and query.

Alert rules and dashboards name metrics from this catalog; nothing else
builds metric SQL. A metric is an aggregate expression over
``product_metrics_1m`` (read with FINAL, so replaced partials count once).
Identifiers in the SQL come from the catalog only; the time range, product and
version are bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from clickhouse_connect.driver.client import Client

from pipeline.histogram import quantile_sql

Dimension = Literal["business impact", "customer experience", "post-launch support", "performance", "volume"]


@dataclass(frozen=True)
class Metric:
    name: str
    dimension: Dimension
    unit: str
    description: str
    expr: str  # aggregate expression over product_metrics_1m columns

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"metric name {self.name!r} must be an identifier")


def _ratio(num: str, den: str) -> str:
    return f"if(sum({den}) = 0, nan, sum({num}) / sum({den}))"


_METRICS = (
    Metric("events", "volume", "events", "Valid events ingested", "sum(events)"),
    Metric("late_events", "volume", "events", "Events that arrived behind the watermark", "sum(late_events)"),
    Metric("sessions", "business impact", "sessions", "Sessions that ended (any status)", "sum(sessions_ended)"),
    Metric(
        "crash_free_sessions",
        "customer experience",
        "ratio",
        "1 - crashed / ended sessions (Sentry's definition)",
        f"1 - {_ratio('sessions_crashed', 'sessions_ended')}",
    ),
    Metric(
        "crash_rate",
        "customer experience",
        "ratio",
        "Crashed / ended sessions",
        _ratio("sessions_crashed", "sessions_ended"),
    ),
    Metric(
        "task_success_rate",
        "customer experience",
        "ratio",
        "Successful feature uses / feature uses",
        _ratio("feature_successes", "feature_uses"),
    ),
    Metric("requests", "performance", "requests", "Requests served", "sum(requests)"),
    Metric(
        "error_rate",
        "performance",
        "ratio",
        "Failed requests (5xx or error set) / requests",
        _ratio("request_errors", "requests"),
    ),
    Metric("latency_mean_ms", "performance", "ms", "Mean request latency", _ratio("latency_ms_sum", "requests")),
    Metric("latency_p50_ms", "performance", "ms", "Median request latency (1% rel. error)", quantile_sql(0.50)),
    Metric(
        "latency_p95_ms", "performance", "ms", "95th percentile request latency (1% rel. error)", quantile_sql(0.95)
    ),
    Metric(
        "latency_p99_ms", "performance", "ms", "99th percentile request latency (1% rel. error)", quantile_sql(0.99)
    ),
    Metric("conversions", "business impact", "conversions", "Conversion events", "sum(conversions)"),
    Metric("revenue", "business impact", "currency", "Sum of conversion values", "sum(revenue)"),
    Metric(
        "nps",
        "customer experience",
        "score",
        "Net promoter score: % promoters (9-10) - % detractors (0-6)",
        "if(sum(nps_promoters + nps_passives + nps_detractors) = 0, nan, "
        "100 * (sum(nps_promoters) - sum(nps_detractors)) / sum(nps_promoters + nps_passives + nps_detractors))",
    ),
    Metric("csat", "customer experience", "score", "Mean CSAT score (1-5)", _ratio("csat_sum", "csat_count")),
    Metric("tickets_opened", "post-launch support", "tickets", "Support tickets opened", "sum(tickets_opened)"),
    Metric("tickets_resolved", "post-launch support", "tickets", "Support tickets resolved", "sum(tickets_resolved)"),
    Metric(
        "tickets_per_1k_sessions",
        "post-launch support",
        "tickets",
        "Tickets opened per 1,000 ended sessions",
        f"1000 * {_ratio('tickets_opened', 'sessions_ended')}",
    ),
)
CATALOG: dict[str, Metric] = {m.name: m for m in _METRICS}


class UnknownMetric(KeyError):
    pass


def get(name: str) -> Metric:
    try:
        return CATALOG[name]
    except KeyError:
        raise UnknownMetric(f"unknown metric {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def parse_since(text: str) -> timedelta:
    """``15m``, ``6h``, ``7d``, ``2w`` -> timedelta."""
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"bad duration {text!r}: use a number and one of m, h, d, w (e.g. 7d)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def query(
    client: Client,
    database: str,
    names: list[str],
    since: datetime,
    until: datetime | None = None,
    product: str | None = None,
    version: str | None = None,
    by: tuple[Literal["product", "version"], ...] = ("product",),
    step_s: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Values of catalog metrics grouped by ``by`` (and a time bucket of ``step_s``)."""
    metrics = [get(n) for n in names]
    until = until or datetime.now(UTC) + timedelta(days=1)
    group: list[str] = list(by)
    if step_s:
        group.insert(0, f"toStartOfInterval(minute, INTERVAL {int(step_s)} SECOND) AS t")
    where = ["minute >= {since:DateTime}", "minute < {until:DateTime}"]
    params: dict[str, Any] = {"since": since, "until": until}
    if product is not None:
        where.append("product = {product:String}")
        params["product"] = product
    if version is not None:
        where.append("version = {version:String}")
        params["version"] = version
    select = [g for g in group] + [f"{m.expr} AS {m.name}" for m in metrics]
    keys = [g.split(" AS ")[-1] for g in group]
    sql = (
        f"SELECT {', '.join(select)} FROM {database}.product_metrics_1m FINAL "
        f"WHERE {' AND '.join(where)} GROUP BY {', '.join(keys) or 'tuple()'} ORDER BY {', '.join(keys) or 'tuple()'}"
    )
    result = client.query(sql, parameters=params)
    return keys + [m.name for m in metrics], [tuple(r) for r in result.result_rows]
