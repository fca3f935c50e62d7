"""Operational metrics of the pipeline itself, exported for Prometheus.

One registry per process (:data:`REGISTRY`); every worker serves it on
``/metrics`` (``PULSE_METRICS_PORT``, loopback by default). Product metrics
live in ClickHouse, not here: these describe the pipeline's own health.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_INGESTED = Counter(
    "pulse_events_ingested_total", "Valid events written to ClickHouse", ["product"], registry=REGISTRY
)
EVENTS_DEAD_LETTERED = Counter(
    "pulse_events_dead_lettered_total", "Messages sent to the dead-letter topic", ["reason"], registry=REGISTRY
)
EVENTS_DUPLICATE = Counter(
    "pulse_events_duplicate_total", "Events skipped because their event_id was already counted", registry=REGISTRY
)
LATE_EVENTS = Counter(
    "pulse_late_events_total", "Events older than the watermark, folded into their minute", registry=REGISTRY
)
BATCH_SIZE = Histogram(
    "pulse_batch_messages",
    "Messages per processed batch",
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram("pulse_batch_seconds", "Time to make one batch durable", ["stage"], registry=REGISTRY)
SINK_RETRIES = Counter(
    "pulse_sink_retries_total",
    "Failed attempts at a step of making a batch durable, by step and failure class (transient, rejected, unknown)",
    ["stage", "class"],
    registry=REGISTRY,
)
WATERMARK_LAG = Gauge("pulse_watermark_lag_seconds", "Wall clock minus the newest event time seen", registry=REGISTRY)
EVENTS_CONSUMED = Counter(
    "pulse_events_consumed_total", "Events read from Kafka (stored, dead-lettered or duplicate)", ["topic"],
    registry=REGISTRY,
)  # fmt: skip
CONSUMER_LAG = Gauge(
    "pulse_consumer_lag_messages",
    "Messages of a partition not yet made durable by this worker (high watermark - next offset)",
    ["topic", "partition"],
    registry=REGISTRY,
)
FRESHNESS = Histogram(
    "pulse_freshness_seconds",
    "End-to-end freshness: wall clock when a batch became queryable minus the newest event time in it, per partition",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86_400),
    registry=REGISTRY,
)
INSERT_ROWS = Counter("pulse_clickhouse_insert_rows_total", "Rows inserted", ["table"], registry=REGISTRY)
INSERT_BYTES = Counter(
    "pulse_clickhouse_insert_bytes_total", "Bytes of raw rows inserted (JSONEachRow blocks)", ["table"],
    registry=REGISTRY,
)  # fmt: skip
INSERT_SECONDS = Histogram("pulse_clickhouse_insert_seconds", "Time per insert", ["table"], registry=REGISTRY)
INSERT_ERRORS = Counter(
    "pulse_clickhouse_insert_errors_total", "Failed inserts by failure class", ["table", "class"], registry=REGISTRY
)
COLLECTOR_REQUESTS = Counter(
    "pulse_collector_requests_total", "HTTP collector requests by status code", ["status"], registry=REGISTRY
)
COLLECTOR_UNMAPPED = Counter(
    "pulse_collector_unmapped_total",
    "Items the standards' routes (OTLP, Sentry, Segment, PostHog) received and mapped to no event, by source and kind",
    ["source", "kind"],
    registry=REGISTRY,
)

# --- alert evaluation and notifications (the evaluator runs in the worker, or in `pulse alerts run`) ---
ALERT_EVALUATIONS = Counter("pulse_alert_evaluations_total", "Rule group evaluations", ["group"], registry=REGISTRY)
ALERT_EVALUATION_FAILURES = Counter(
    "pulse_alert_evaluation_failures_total", "Rule group evaluations that failed", ["group"], registry=REGISTRY
)
ALERT_EVALUATION_SECONDS = Histogram(
    "pulse_alert_evaluation_seconds", "Time to evaluate one rule group", ["group"], registry=REGISTRY
)
ALERTS_ACTIVE = Gauge(
    "pulse_alerts", "Alerts by state after the last evaluation", ["alertname", "state"], registry=REGISTRY
)
LAST_EVALUATION = Gauge(
    "pulse_alert_last_evaluation_timestamp_seconds", "Unix time of the last completed evaluation", registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "pulse_notifications_total",
    "Notification deliveries by notifier, target (the receiver's scheme://host:port) and result (sent, failed, "
    "dropped)",
    ["notifier", "target", "result"],
    registry=REGISTRY,
)


MAX_PRODUCT_LABELS = 100
_products: set[str] = set()


def product_label(product: str) -> str:
    """``product`` as a label value, or ``_other`` past the first :data:`MAX_PRODUCT_LABELS` (bounded cardinality)."""
    if product in _products:
        return product
    if len(_products) < MAX_PRODUCT_LABELS:
        _products.add(product)
        return product
    return "_other"


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve ``/metrics`` in a background thread (port 0 = don't serve)."""
    if port:
        start_http_server(port, addr=addr, registry=REGISTRY)
