"""The metric catalog: every product metric by name, with its definition and query.

Alert rules and dashboards name metrics from this catalog; nothing else
builds metric SQL. A metric is an aggregate expression over one *source*:

* ``minute`` - ``product_metrics_1m`` FINAL (replaced partials count once);
* ``feature`` / ``goal`` - ``breakdown_metrics_1m`` FINAL, grouped by the
  feature or conversion goal;
* ``users`` - daily unique-user sketches (``users_1d``), merged over the window;
* ``feature_users`` - daily unique users per feature (``feature_users_1d``);
* ``tickets`` - support tickets paired opened -> resolved from raw ``events``;
* ``feedback`` - raw ``feedback`` events, for what the minute partials do not
  keep (the sum of squared CSAT scores, which a CSAT interval needs).

Metrics over unique users are HyperLogLog estimates (``uniqCombined64``:
~0.3% standard error at 1M users, exact for small sets); every other metric is
exact. Unique-user metrics count whole UTC days: every day the window touches.
Windowed definitions: ``dau`` is the mean daily actives in the window,
``active_users`` the distinct users in it (query ``--since 30d`` for MAU),
``stickiness`` = dau / active_users (DAU/MAU over a 30-day window),
``release_adoption`` a version's share of sessions started in the window
(``--since 24h`` for the usual definition). SQL identifiers come from the
catalog only; the time range, product and version are bound parameters.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pipeline.catalog.histogram import quantile_sql
from pipeline.durations import parse_duration
from pipeline.errors import PulseError, UsageError

if TYPE_CHECKING:  # the worker extra; an emit-only install imports the catalog without it
    from clickhouse_connect.driver.client import Client

Dimension = Literal["business impact", "customer experience", "post-launch support", "performance", "volume"]
GroupKey = Literal["product", "version", "feature", "goal"]


@dataclass(frozen=True)
class Source:
    """Where a family of metrics is read from."""

    sql: str  # FROM clause; {db}, and for nested sources {where} and {inner_group}
    time: str  # time column filtered on (inside the inner query when nested)
    keys: tuple[str, ...] = ("product", "version")  # what its rows can be grouped by
    filter: str = ""  # fixed condition
    nested: bool = False  # filters go into the inner query
    outer_time: str = ""  # time column the outer query buckets by, when nested
    key_columns: tuple[tuple[str, str], ...] = ()  # group key -> column, where they differ


def _breakdown(kind: str) -> Source:
    """Per-feature or per-goal partials: the breakdown's ``name`` column is the group key ``kind``."""
    return Source(
        "{db}.breakdown_metrics_1m FINAL",
        "minute",
        ("product", "version", kind),
        f"kind = '{kind}'",
        key_columns=((kind, "name"),),
    )


SOURCES: dict[str, Source] = {
    "minute": Source("{db}.product_metrics_1m FINAL", "minute"),
    "feature": _breakdown("feature"),
    "goal": _breakdown("goal"),
    "users": Source(
        "(SELECT {inner_group}, day, uniqCombined64MergeState(users) AS users_st, "
        "uniqCombined64MergeState(session_users) AS session_users_st, "
        "uniqCombined64MergeState(crashed_users) AS crashed_users_st, uniqCombined64Merge(users) AS daily_users "
        "FROM {db}.users_1d WHERE {where} GROUP BY {inner_group}, day)",
        "day",
        nested=True,
        outer_time="toDateTime(day)",
    ),
    "feature_users": Source(
        "{db}.feature_users_1d", "day", ("product", "version", "feature"), outer_time="toDateTime(day)"
    ),
    # Feature users next to the product's active users of the same window (one row per product and feature).
    "feature_adoption": Source(
        "(SELECT f.product AS product, f.feature AS feature, f.feature_users AS feature_users, a.users AS users "
        "FROM (SELECT product, feature, uniqCombined64Merge(users) AS feature_users FROM {db}.feature_users_1d "
        "WHERE {where} GROUP BY product, feature) AS f "
        "INNER JOIN (SELECT product, uniqCombined64Merge(users) AS users FROM {db}.users_1d "
        "WHERE {where} GROUP BY product) AS a ON f.product = a.product)",
        "day",
        ("product", "feature"),
        nested=True,
    ),
    "feedback": Source("{db}.events FINAL", "ts", filter="type = 'feedback'"),
    "tickets": Source(
        "(SELECT product, any(version) AS ticket_version, ticket_id, minIf(ts, action = 'opened') AS opened, "
        "maxIf(ts, action = 'resolved') AS resolved FROM {db}.events FINAL WHERE type = 'support_ticket' "
        "AND {where} GROUP BY product, ticket_id HAVING opened > 0)",
        "ts",
        nested=True,
        outer_time="opened",
        # Not `AS version`: the inner WHERE filters on the events' version column, which that alias would shadow.
        key_columns=(("version", "ticket_version"),),
    ),
}


@dataclass(frozen=True)
class Metric:
    name: str
    dimension: Dimension
    unit: str
    description: str
    expr: str  # aggregate expression over the source's columns
    source: str = "minute"

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").isalnum():
            raise ValueError(f"metric name {self.name!r} must be an identifier")
        if self.source not in SOURCES:
            raise ValueError(f"metric {self.name!r}: unknown source {self.source!r}")


def _ratio(num: str, den: str) -> str:
    return f"if(sum({den}) = 0, nan, sum({num}) / sum({den}))"


def _uniq_ratio(num: str, den: str) -> str:
    return f"if(uniqCombined64Merge({den}) = 0, nan, uniqCombined64Merge({num}) / uniqCombined64Merge({den}))"


# The longest look-back: the longest raw-event TTL a store may have (StoreSettings.events_ttl_days).
_LONGEST_S = 20_000 * 86_400

_METRICS = (
    Metric("events", "volume", "events", "Valid events ingested", "sum(events)"),
    Metric("late_events", "volume", "events", "Events that arrived behind the watermark", "sum(late_events)"),
    # business impact
    Metric("sessions", "business impact", "sessions", "Sessions that ended (any status)", "sum(sessions_ended)"),
    Metric("sessions_started", "business impact", "sessions", "Sessions started", "sum(sessions_started)"),
    Metric("active_users", "business impact", "users", "Distinct users in the window (MAU over 30d)",
           "uniqCombined64Merge(users_st)", "users"),
    Metric("dau", "business impact", "users", "Mean daily active users in the window", "avg(daily_users)", "users"),
    Metric("stickiness", "business impact", "ratio", "DAU / distinct users of the window (DAU/MAU over 30d)",
           "if(uniqCombined64Merge(users_st) = 0, nan, avg(daily_users) / uniqCombined64Merge(users_st))", "users"),
    Metric("release_adoption", "business impact", "ratio",
           "A version's share of the product's sessions started in the window (use --by product version)",
           "if(sum(sum(sessions_started)) OVER ({per_product}) = 0, nan, "
           "sum(sessions_started) / sum(sum(sessions_started)) OVER ({per_product}))"),
    Metric("conversions", "business impact", "conversions", "Conversion events", "sum(conversions)"),
    Metric("revenue", "business impact", "currency", "Sum of conversion values", "sum(revenue)"),
    Metric("conversion_rate", "business impact", "ratio", "Conversions per ended session",
           _ratio("conversions", "sessions_ended")),
    Metric("goal_conversions", "business impact", "conversions", "Conversions per goal (--by goal)",
           "sum(count)", "goal"),
    Metric("goal_revenue", "business impact", "currency", "Revenue per goal (--by goal)", "sum(value_sum)", "goal"),
    # customer experience
    Metric("crashed_sessions", "customer experience", "sessions", "Sessions that ended with a crash",
           "sum(sessions_crashed)"),
    Metric("crash_free_sessions", "customer experience", "ratio", "1 - crashed / ended sessions (Sentry)",
           f"1 - {_ratio('sessions_crashed', 'sessions_ended')}"),
    Metric("crash_rate", "customer experience", "ratio", "Crashed / ended sessions",
           _ratio("sessions_crashed", "sessions_ended")),
    Metric("errored_sessions_rate", "customer experience", "ratio", "Sessions with errors but no crash / ended",
           _ratio("sessions_errored", "sessions_ended")),
    Metric("crash_free_users", "customer experience", "ratio", "1 - users with a crash / users with a session",
           f"1 - {_uniq_ratio('crashed_users_st', 'session_users_st')}", "users"),
    Metric("task_success_rate", "customer experience", "ratio", "Successful feature uses / feature uses",
           _ratio("feature_successes", "feature_uses")),
    Metric("feature_uses_total", "customer experience", "uses", "Feature uses, all features (task success base)",
           "sum(feature_uses)"),
    Metric("feature_successes_total", "customer experience", "uses", "Successful feature uses, all features",
           "sum(feature_successes)"),
    Metric("feature_uses", "customer experience", "uses", "Uses per feature (--by feature)", "sum(count)", "feature"),
    Metric("feature_success_rate", "customer experience", "ratio", "Success rate per feature (--by feature)",
           _ratio("ok", "count"), "feature"),
    Metric("feature_users", "customer experience", "users", "Distinct users per feature (--by feature)",
           "uniqCombined64Merge(users)", "feature_users"),
    Metric("feature_adoption", "business impact", "ratio",
           "Feature users / the product's active users in the window (--by product feature; no --step)",
           "if(any(users) = 0, nan, any(feature_users) / any(users))", "feature_adoption"),
    Metric("nps", "customer experience", "score", "Net promoter score: % promoters (9-10) - % detractors (0-6)",
           "if(sum(nps_promoters + nps_passives + nps_detractors) = 0, nan, "
           "100 * (sum(nps_promoters) - sum(nps_detractors)) / sum(nps_promoters + nps_passives + nps_detractors))"),
    Metric("nps_answers", "customer experience", "answers", "NPS answers (0-10)",
           "sum(nps_promoters + nps_passives + nps_detractors)"),
    Metric("nps_promoters", "customer experience", "answers", "NPS answers of 9 or 10", "sum(nps_promoters)"),
    Metric("nps_detractors", "customer experience", "answers", "NPS answers of 0 to 6", "sum(nps_detractors)"),
    Metric("csat", "customer experience", "score", "Mean CSAT score (1-5)", _ratio("csat_sum", "csat_count")),
    Metric("csat_answers", "customer experience", "answers", "CSAT answers (1-5)", "sum(csat_count)"),
    Metric("csat_points", "customer experience", "points", "Sum of CSAT scores (csat = csat_points / csat_answers)",
           "sum(csat_sum)"),
    Metric("csat_squares", "customer experience", "points", "Sum of squared CSAT scores (for the CSAT's variance)",
           "sumIf(toUInt64(score) * score, kind = 'csat')", "feedback"),
    # post-launch support
    Metric("tickets_opened", "post-launch support", "tickets", "Support tickets opened", "sum(tickets_opened)"),
    Metric("tickets_resolved", "post-launch support", "tickets", "Support tickets resolved", "sum(tickets_resolved)"),
    Metric("tickets_per_1k_sessions", "post-launch support", "tickets", "Tickets opened per 1,000 ended sessions",
           f"1000 * {_ratio('tickets_opened', 'sessions_ended')}"),
    Metric("open_tickets", "post-launch support", "tickets", "Tickets opened in the window and not resolved",
           "countIf(resolved < opened)", "tickets"),
    Metric("time_to_resolve_h", "post-launch support", "hours", "Mean hours from opened to resolved",
           "avgIf(dateDiff('millisecond', opened, resolved) / 3.6e6, resolved >= opened)", "tickets"),
    # performance
    Metric("requests", "performance", "requests", "Requests served", "sum(requests)"),
    Metric("request_errors", "performance", "requests", "Failed requests (5xx or error set)", "sum(request_errors)"),
    Metric("error_rate", "performance", "ratio", "Failed requests (5xx or error set) / requests",
           _ratio("request_errors", "requests")),
    Metric("latency_mean_ms", "performance", "ms", "Mean request latency", _ratio("latency_ms_sum", "requests")),
    Metric("latency_p50_ms", "performance", "ms", "Median request latency (1% rel. error)", quantile_sql(0.50)),
    Metric("latency_p95_ms", "performance", "ms", "95th percentile latency (1% rel. error)", quantile_sql(0.95)),
    Metric("latency_p99_ms", "performance", "ms", "99th percentile latency (1% rel. error)", quantile_sql(0.99)),
)  # fmt: skip
CATALOG: dict[str, Metric] = {m.name: m for m in _METRICS}


class BadQuery(UsageError, ValueError):
    """A query the catalog cannot answer as asked (a grouping or time series the metric's source lacks)."""


class UnknownMetric(PulseError, KeyError):
    """A metric name the catalog does not know."""

    def __str__(self) -> str:  # the message as written, not KeyError's repr of it
        return str(self.args[0]) if self.args else ""


def get(name: str) -> Metric:
    """The catalog's metric ``name``; an unknown name is refused with the nearest names (difflib), like git does."""
    try:
        return CATALOG[name]
    except KeyError:
        near = difflib.get_close_matches(name, CATALOG, n=3, cutoff=0.6)
        if near:
            names = ", ".join(map(repr, near[:-1])) + " or " * (len(near) > 1) + repr(near[-1])
            hint = f"did you mean {names}? (`pulse metrics list` shows them all)"
        else:
            hint = f"known: {', '.join(sorted(CATALOG))}"
        raise UnknownMetric(f"unknown metric {name!r}; {hint}") from None


def parse_since(text: str) -> timedelta:
    """A look-back window or step (``90s``, ``15m``, ``1h30m``, ``7d``, ``2w``) -> a positive timedelta.

    The grammar is the rule files' (:func:`pipeline.durations.parse_duration`); zero is refused here, since an
    empty window or step means nothing, and so is a span no datetime can go back.
    """
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"bad duration {text!r}: must be more than 0, e.g. 90s, 1h30m, 7d")
    if seconds > _LONGEST_S:
        raise ValueError(f"bad duration {text!r}: at most {_LONGEST_S // 86_400:.0f}d")
    return timedelta(seconds=seconds)


def query(
    client: Client,
    database: str,
    names: list[str],
    since: datetime,
    until: datetime | None = None,
    product: str | None = None,
    version: str | None = None,
    by: tuple[GroupKey, ...] = ("product",),
    step_s: int | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Values of catalog metrics grouped by ``by`` (and a time bucket ``t`` of ``step_s`` seconds).

    Metrics from different sources are queried separately and joined on the
    group keys; a group missing from one source gets NaN for its metrics.
    """
    metrics = [get(n) for n in names]
    params: dict[str, Any] = {"since": since, "until": until or datetime.now(UTC) + timedelta(days=1)}
    if product is not None:
        params["product"] = product
    if version is not None:
        params["version"] = version
    keys = (["t"] if step_s else []) + list(by)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    by_source: dict[str, list[Metric]] = {}
    for m in metrics:
        by_source.setdefault(m.source, []).append(m)
    for source_name, group in by_source.items():
        sql = _source_sql(database, SOURCES[source_name], group, by, step_s, params)
        for row in client.query(sql, parameters=params).result_rows:
            key, values = tuple(row[: len(keys)]), row[len(keys) :]
            merged.setdefault(key, {}).update({m.name: v for m, v in zip(group, values, strict=True)})
    rows = [key + tuple(vals.get(n, math.nan) for n in names) for key, vals in sorted(merged.items())]
    return keys + names, rows


def _source_sql(
    db: str, source: Source, metrics: list[Metric], by: tuple[GroupKey, ...], step_s: int | None, params: dict[str, Any]
) -> str:
    if source.time == "day":  # daily sketches: every UTC day the window touches counts whole
        where = ["day >= toDate({since:DateTime})", "day <= toDate({until:DateTime} - 1)"]
    else:
        where = [f"{source.time} >= {{since:DateTime}}", f"{source.time} < {{until:DateTime}}"]
    where += [f"{k} = {{{k}:String}}" for k in ("product", "version") if k in params]
    if step_s is not None and step_s <= 0:
        raise BadQuery("step must be positive")

    def bucket(column: str) -> str:
        return f"toStartOfInterval({column}, INTERVAL {int(step_s or 0)} SECOND)"

    return select_sql(db, metrics, by, where, bucket if step_s else None)


def select_sql(
    db: str,
    metrics: Sequence[Metric],
    by: Sequence[str],
    where: Sequence[str],
    bucket: Callable[[str], str] | None = None,
) -> str:
    """The one SELECT of catalog metrics that share a source: every metric query (CLI, rules, dashboards) is this.

    Columns: ``t`` (the time bucket ``bucket(time column)``, when given), the
    ``by`` keys, then ``metric_<name>`` per metric. ``where`` holds conditions
    on the source's time and key columns - bound parameters for the CLI,
    Grafana macros for dashboards.
    """
    source = SOURCES[metrics[0].source]
    if any(m.source != metrics[0].source for m in metrics):
        raise ValueError(f"metrics {[m.name for m in metrics]} come from several sources: one query per source")
    for key in by:
        if key not in source.keys:
            raise BadQuery(f"metric {metrics[0].name!r} cannot be grouped by {key!r} (it has {source.keys})")
    where = [*where, source.filter] if source.filter else list(where)
    columns = dict(source.key_columns)
    group = [f"{columns.get(k, k)} AS {k}" for k in by]
    if bucket is not None and source.nested and not source.outer_time:
        raise BadQuery(f"metric {metrics[0].name!r} has no time series (--step); query it per window")
    if bucket is not None:
        group.insert(0, f"{bucket(source.outer_time or source.time)} AS t")
    per_product = "PARTITION BY t, product" if bucket is not None else "PARTITION BY product"
    exprs = [m.expr.replace("{per_product}", per_product) for m in metrics]
    # Output aliases differ from every column name: ClickHouse would otherwise resolve a
    # column in a later expression (sum(conversions)) to an earlier alias of the same name.
    select = ", ".join(group + [f"{e} AS metric_{m.name}" for e, m in zip(exprs, metrics, strict=True)])
    names = ", ".join(g.split(" AS ")[-1] for g in group) or "tuple()"
    if source.nested:
        inner_group = ", ".join(k for k in ("product", "version") if k in by) or "product"
        src = source.sql.format(db=db, where=" AND ".join(where), inner_group=inner_group)
        return f"SELECT {select} FROM {src} GROUP BY {names} ORDER BY {names}"
    src = source.sql.format(db=db)
    return f"SELECT {select} FROM {src} WHERE {' AND '.join(where)} GROUP BY {names} ORDER BY {names}"
