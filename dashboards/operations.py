"""Pipeline operations (Prometheus): throughput, lag, freshness, DLQ by reason, overflow, inserts, evaluator health.

Reads the pipeline's own metrics (``pipeline/telemetry.py``) scraped from every
worker, the collector and the evaluator; ``$instance`` selects processes.
"""

from __future__ import annotations

from dashboards import thresholds
from dashboards.model import Dashboard, Grid, Panel, Query, Variable

UID = "pulse-pipeline"
SEL = 'instance=~"$instance"'


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, "timeseries", (), (), legend)


def _rate(metric: str, by: str = "") -> str:
    inner = f"rate({metric}{{{SEL}}}[$__rate_interval])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _quantiles(metric: str) -> tuple[Query, ...]:
    return tuple(
        _q(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{SEL}}}[$__rate_interval])))", f"p{name}")
        for q, name in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
    )


def operations() -> Dashboard:
    g = Grid()
    panels = (
        Panel("Events ingested / s", "timeseries",
              (_q(_rate("pulse_events_ingested_total", "product"), "{{product}}"),), g.place(8, 8), "ops"),
        Panel("Dead-lettered / s by reason", "timeseries",
              (_q(_rate("pulse_events_dead_lettered_total", "reason"), "{{reason}}"),), g.place(8, 8), "ops"),
        Panel("Consumer lag (messages)", "timeseries",
              (_q(f"sum by (topic, partition) (pulse_consumer_lag_messages{{{SEL}}})", "{{topic}}/{{partition}}"),),
              g.place(8, 8), "short"),
        Panel("Freshness: event time to queryable", "timeseries", _quantiles("pulse_freshness_seconds"),
              g.place(8, 8), "s"),
        Panel("Watermark lag", "timeseries", (_q(f"max by (instance) (pulse_watermark_lag_seconds{{{SEL}}})",
                                                "{{instance}}"),), g.place(8, 8), "s"),
        Panel("Late events / s", "timeseries", (_q(_rate("pulse_late_events_total"), "late"),), g.place(8, 8), "ops"),
        Panel("Cardinality overflow / s by kind", "timeseries",  # events stored as __overflow__ (caps per product)
              (_q(_rate("pulse_cardinality_overflow_total", "kind"), "{{kind}}"),), g.place(8, 8), "ops"),
        Panel("Batch size (messages)", "timeseries", _quantiles("pulse_batch_messages"), g.place(8, 8), "short"),
        Panel("Batch seconds by stage (p95)", "timeseries", (_q(
            "histogram_quantile(0.95, sum by (le, stage) "
            f"(rate(pulse_batch_seconds_bucket{{{SEL}}}[$__rate_interval])))",
            "{{stage}}"),), g.place(8, 8), "s"),
        Panel("Sink retries / s", "timeseries", (_q(_rate("pulse_sink_retries_total"), "retries"),), g.place(8, 8),
              "ops"),
        Panel("ClickHouse insert seconds (p95) by table", "timeseries", (_q(
            "histogram_quantile(0.95, sum by (le, table) "
            f"(rate(pulse_clickhouse_insert_seconds_bucket{{{SEL}}}[$__rate_interval])))", "{{table}}"),),
            g.place(8, 8), "s"),
        Panel("ClickHouse rows inserted / s by table", "timeseries",
              (_q(_rate("pulse_clickhouse_insert_rows_total", "table"), "{{table}}"),), g.place(8, 8), "ops"),
        Panel("ClickHouse insert errors / s", "timeseries",
              (_q(_rate("pulse_clickhouse_insert_errors_total", "table, class"), "{{table}} {{class}}"),),
              g.place(8, 8), "ops"),
        Panel("Alert evaluations / s", "timeseries", (
            _q(_rate("pulse_alert_evaluations_total", "group"), "{{group}}"),
            _q(_rate("pulse_alert_evaluation_failures_total", "group"), "{{group}} failed")), g.place(8, 8), "ops"),
        Panel("Seconds since last evaluation", "stat",
              (_q(f"time() - max(pulse_alert_last_evaluation_timestamp_seconds{{{SEL}}})"),), g.place(8, 8), "s",
              thresholds=thresholds.for_evaluator_age()),
        Panel("Notifications / s", "timeseries",
              (_q(_rate("pulse_notifications_total", "notifier, result"), "{{notifier}} {{result}}"),),
              g.place(8, 8), "ops"),
        Panel("Collector requests / s by status", "timeseries",
              (_q(_rate("pulse_collector_requests_total", "status"), "{{status}}"),), g.place(8, 8), "reqps"),
        Panel("Events consumed / s by topic", "timeseries",
              (_q(_rate("pulse_events_consumed_total", "topic"), "{{topic}}"),), g.place(8, 8), "ops"),
        Panel("Targets up", "stat", (_q(f"sum(up{{{SEL}}})"),), g.place(8, 8), "short",
              thresholds=thresholds.for_metric("up")),
    )  # fmt: skip
    return Dashboard(
        UID,
        "ProductPulse - Pipeline operations",
        "The pipeline's own health from Prometheus: throughput, lag, freshness, dead letters, inserts, evaluator.",
        "prometheus",
        panels,
        variables=(
            Variable(
                "instance",
                "Instance",
                Query("label_values(pulse_events_ingested_total, instance)", "table", ("instance",), ()),
                include_all=True,
                all_value=".*",
            ),
        ),
        time_from="now-6h",
        refresh="30s",
    )
