"""The product-metric catalog: every metric by name, its definition, and the one query builder.

Alert rules and dashboards name metrics from here (:mod:`.metrics`); latency
quantiles come from the mergeable log-bucket histogram (:mod:`.histogram`).
"""

from pipeline.catalog.metrics import CATALOG, BadQuery, Metric, UnknownMetric, get, parse_since, query

__all__ = ["CATALOG", "BadQuery", "Metric", "UnknownMetric", "get", "parse_since", "query"]
