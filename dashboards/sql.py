"""Panel SQL with Grafana macros, built from the metric catalog (no panel has SQL typed by hand).

:func:`metric_queries` turns catalog metric names into one query per catalog
source, the same SELECT the catalog's own query builder writes, with the time
range, bucket and filters as the ClickHouse plugin's macros and template
variables instead of bound parameters:

* time filter ``$__timeFilter(col)`` (``$__dateFilter(day)`` for daily sketches),
* time bucket ``$__timeInterval(col) AS t``,
* product / version filters ``$__conditionalAll(has(<values of ${product:percentencode}>, product), $product)``:
  the whole condition turns into ``1=1`` when the variable is "All" (or unset),
  which is also how the built-in view asks for every product or version.

A variable's value reaches the SQL percent-encoded (Grafana's ``percentencode`` format, RFC 3986 strict:
only ``A-Za-z0-9-_.~`` and ``%XX`` remain, a multi-value as ``{a,b}`` encoded) inside a string literal that
ClickHouse decodes (``decodeURLComponent``) and splits. No value can break out of that literal, whatever it
holds: ``sqlstring`` doubles ``'`` but leaves ``\\``, and ClickHouse reads ``\'`` as an escaped quote (issue 17,
finding 2); ``singlequote`` escapes ``'`` but not ``\\`` either. Splitting at ``,`` and dropping ``{}`` is exact
because identifiers hold neither (:data:`pipeline.schema.IDENTIFIER_PATTERN`).

Every macro here takes its argument in parentheses: the plugin's parser scans
an argument-less macro (``$__fromTime``) forward to the next parenthesis and
would swallow the SQL in between (see :func:`dashboards.macros.check`).
The other queries (scorecards, verdicts, alerts, releases, variable options)
read the tables the alert evaluator fills (migration 3) and are built here too.

The SELECT itself is the catalog's (:func:`pipeline.catalog.metrics.select_sql`),
the same one ``pulse metrics query`` and the alert rules run.
"""

from __future__ import annotations

from dashboards.errors import DashboardError
from dashboards.in_words import evidence_in_words
from dashboards.model import Query
from pipeline.catalog.metrics import CATALOG, SOURCES, Metric, select_sql

GroupKey = str
DIMENSIONS = ("business impact", "customer experience", "post-launch support", "performance")


def variable_values(variable: str) -> str:
    """The ClickHouse ``Array(String)`` of a template variable's values, passed percent-encoded (see above)."""
    return f"splitByChar(',', replaceRegexpAll(decodeURLComponent('${{{variable}:percentencode}}'), '[{{}}]', ''))"


def condition(column: str, variable: str) -> str:
    """``column`` is one of the variable's values, or ``1=1`` when the variable is All or unset.

    The whole test sits inside ``has(...)``: the plugin splits a macro's arguments at top-level commas
    without reading quotes, so every comma of the first argument must be nested in parentheses.
    """
    return f"$__conditionalAll(has({variable_values(variable)}, {column}), ${variable})"


def _filters(product: bool, version: bool) -> list[str]:
    return [condition(key, key) for key, wanted in (("product", product), ("version", version)) if wanted]


def metric_sql(
    database: str,
    names: list[str],
    by: tuple[GroupKey, ...] = ("product",),
    series: bool = False,
    product: bool = False,
    version: bool = False,
) -> str:
    """The catalog's SELECT for metrics of ONE source, with Grafana macros for time, bucket and filters.

    Columns: ``t`` (when ``series``), the ``by`` keys, then ``metric_<name>`` per metric.
    """
    metrics = [_metric(n) for n in names]
    source = SOURCES[metrics[0].source]
    where = ["$__dateFilter(day)" if source.time == "day" else f"$__timeFilter({source.time})"]
    where += _filters(product, version)
    if series:
        where.append(complete_buckets(source.time))
    try:
        return select_sql(database, metrics, by, where, _time_interval if series else None)
    except ValueError as exc:
        raise DashboardError(str(exc)) from None


def complete_buckets(column: str) -> str:
    """Only complete buckets: a series ends before the bucket holding the range's end (by default, now).

    The last bucket of "now-14d to now" holds minutes, not hours (or a day), so it
    reads as a drop in every count. Rows before the start of that bucket keep every
    complete one; a daily source (``day``) ends at the day before the range's UTC day.
    ``$__toTime`` sits right before a ``)`` or ``,`` so the plugin's parser reads it alone.
    """
    if column == "day":
        return "day < toDate($__toTime, 'UTC')"
    return f"{column} < $__timeInterval($__toTime)"


def partial_bucket_note(queries: tuple[Query, ...]) -> str:
    """What a reader is told about a series that stops short of now: which partial bucket is left out ("" if none)."""
    if any(complete_buckets("day") in q.text for q in queries):
        return "Complete UTC days only: today (partial) is left out."
    if any(q.format == "timeseries" and "< $__timeInterval($__toTime)" in q.text for q in queries):
        return "Complete buckets only: the current one (partial) is left out."
    return ""


def _time_interval(column: str) -> str:
    return f"$__timeInterval({column})"


def metric_queries(
    database: str,
    names: list[str],
    by: tuple[GroupKey, ...] = ("product",),
    series: bool = False,
    product: bool = False,
    version: bool = False,
) -> tuple[Query, ...]:
    """One :class:`Query` per catalog source of ``names`` (in first-seen order)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_metric(name).source, []).append(name)
    keys = (("t",) if series else ()) + tuple(by)
    return tuple(
        Query(
            metric_sql(database, group, by, series, product, version),
            "timeseries" if series else "table",
            keys,
            tuple(f"metric_{n}" for n in group),
        )
        for group in groups.values()
    )


_UNITS = {"ratio": "percentunit", "ms": "ms", "currency": "currencyUSD", "score": "none", "hours": "h"}


def unit_of(column: str) -> str | None:
    """Grafana unit of a ``metric_<name>`` column (from the catalog), None for other columns."""
    metric = CATALOG.get(column.removeprefix("metric_")) if column.startswith("metric_") else None
    return _UNITS.get(metric.unit, "short") if metric else None


def _metric(name: str) -> Metric:
    try:
        return CATALOG[name]
    except KeyError:
        raise DashboardError(f"unknown catalog metric {name!r}") from None


# --- scorecards, verdicts, alerts, releases (migration 3 and 2 tables) ---

_SCORE_COLUMNS = tuple(d.replace(" ", "_").replace("-", "_") for d in DIMENSIONS)


def _latest_scorecards(database: str) -> str:
    """(product, at) of each product's newest scorecard evaluation in the time range."""
    return (
        f"SELECT product, max(at) FROM {database}.product_scorecards FINAL "
        f"WHERE $__timeFilter(at) AND {condition('product', 'product')} GROUP BY product"
    )


def scorecard_query(database: str) -> Query:
    """Every product's newest four dimension scores (and composite) in one row, with its candidate flag."""
    scores = ", ".join(
        f"maxIf(score, dimension = '{d}') AS {c}" for d, c in zip(DIMENSIONS, _SCORE_COLUMNS, strict=True)
    )
    sql = (
        f"SELECT product, {scores}, maxIf(score, dimension = 'composite') AS composite, "
        "toUInt8(countIf(below_floor = 1 AND dimension != 'composite')) AS dimensions_below_floor, "
        "max(days_below) AS days_below, max(redesign_candidate) AS redesign_candidate, max(at) AS evaluated_at "
        f"FROM {database}.product_scorecards FINAL WHERE (product, at) IN ({_latest_scorecards(database)}) "
        "GROUP BY product ORDER BY redesign_candidate DESC, product"
    )
    return Query(
        sql,
        "table",
        ("product",),
        _SCORE_COLUMNS + ("composite", "dimensions_below_floor", "days_below", "redesign_candidate", "evaluated_at"),
    )


def candidates_query(database: str) -> Query:
    """The redesign candidates' dimensions below floor (and composite), with the evaluator's evidence."""
    latest = _latest_scorecards(database)
    sql = (
        f"SELECT product, dimension, score, floor, days_below, trend, {evidence_in_words()} AS in_words "
        f"FROM {database}.product_scorecards FINAL WHERE (product, at) IN ({latest}) "
        f"AND product IN (SELECT product FROM {database}.product_scorecards FINAL WHERE (product, at) IN ({latest}) "
        "GROUP BY product HAVING max(redesign_candidate) = 1) "
        "AND (below_floor = 1 OR dimension = 'composite') ORDER BY product, dimension"
    )
    return Query(sql, "table", ("product", "dimension"), ("score", "floor", "days_below", "trend", "in_words"))


def scorecard_trend_query(database: str) -> Query:
    """Mean of the four dimension scores per product over time (the scorecard's own history)."""
    dims = ", ".join(f"'{d}'" for d in DIMENSIONS)
    sql = (
        f"SELECT $__timeInterval(at) AS t, product, avg(score) AS mean_score FROM {database}.product_scorecards FINAL "
        f"WHERE $__timeFilter(at) AND {condition('product', 'product')} AND dimension IN ({dims}) "
        "GROUP BY t, product ORDER BY t, product"
    )
    return Query(sql, "timeseries", ("t", "product"), ("mean_score",))


def firing_alerts_query(database: str) -> Query:
    """Alerts whose newest state in the time range is firing (one row per fingerprint)."""
    sql = (
        "SELECT alertname, product, state, value, since FROM ("
        "SELECT alertname, fingerprint, argMax(labels['product'], at) AS product, argMax(state, at) AS state, "
        "argMax(value, at) AS value, argMax(fired_at, at) AS since "
        f"FROM {database}.alert_events FINAL WHERE $__timeFilter(at) GROUP BY alertname, fingerprint) "
        f"WHERE state = 'firing' AND {condition('product', 'product')} ORDER BY since DESC, alertname"
    )
    return Query(sql, "table", ("alertname", "product"), ("state", "value", "since"))


def verdicts_query(database: str) -> Query:
    """Regression verdicts per release and signal (newest per key), severe and regressed first."""
    sql = (
        "SELECT product, version, baseline_version, signal, candidate_value, baseline_value, test, p_value, "
        "verdict, severe, released_at, bake_s, JSONExtractString(evidence, 'comparison') AS comparison, "
        f"JSONExtractString(evidence, 'sentence') AS in_words FROM {database}.release_verdicts FINAL "
        f"WHERE $__timeFilter(at) AND {condition('product', 'product')} "
        "ORDER BY severe DESC, verdict = 'regression' DESC, product, version, signal"
    )
    return Query(
        sql,
        "table",
        ("product", "version", "baseline_version", "signal"),
        ("candidate_value", "baseline_value", "test", "p_value", "verdict", "severe", "released_at", "bake_s",
         "comparison", "in_words"),
    )  # fmt: skip


def releases_query(database: str) -> Query:
    sql = (
        "SELECT product, version, released_at, channel, rollout_pct, commit "
        f"FROM {database}.releases FINAL WHERE $__timeFilter(released_at) AND {condition('product', 'product')} "
        "ORDER BY released_at DESC, product"
    )
    return Query(sql, "table", ("product", "version"), ("released_at", "channel", "rollout_pct", "commit"))


def release_annotations_query(database: str) -> Query:
    """Release markers for time series: ``time`` and ``text`` (the plugin's annotation columns)."""
    sql = (
        "SELECT released_at AS time, concat(product, ' ', version, ' released (', channel, ', ', "
        f"toString(rollout_pct), '%)') AS text FROM {database}.releases FINAL "
        f"WHERE $__timeFilter(released_at) AND {condition('product', 'product')} ORDER BY time"
    )
    return Query(sql, "table", ("time",), ("text",))


def products_query(database: str) -> Query:
    """Products with users in the time range (the ``product`` variable's options)."""
    sql = f"SELECT DISTINCT product FROM {database}.users_1d WHERE $__dateFilter(day) ORDER BY product"
    return Query(sql, "table", ("product",), ())


def versions_query(database: str) -> Query:
    """Versions of the chosen product(s) with users in the time range (the ``version`` variable's options)."""
    sql = (
        f"SELECT DISTINCT version FROM {database}.users_1d WHERE $__dateFilter(day) "
        f"AND {condition('product', 'product')} ORDER BY version"
    )
    return Query(sql, "table", ("version",), ())
