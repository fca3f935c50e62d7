"""expand_macros against the ClickHouse plugin's documented outputs.

The cases are those of the plugin's pkg/macros/macros_test.go and src/data/CHDatasource.test.ts.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.errors import DashboardError
from dashboards.macros import ALL, apply_conditional_all, bind, check, expand_macros, interpolate, replace_variables
from dashboards.registry import all_dashboards

FROM = datetime(2014, 11, 12, 11, 45, 26, 371000, tzinfo=UTC)
TO = datetime(2015, 11, 12, 11, 45, 26, 371000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("$__fromTime", "toDateTime(1415792726)"),
        ("$__toTime", "toDateTime(1447328726)"),
        ("$__fromTime_ms", "fromUnixTimestamp64Milli(1415792726371)"),
        ("$__toTime_ms", "fromUnixTimestamp64Milli(1447328726371)"),
        ("$__dateFilter(dateCol)", "dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')"),
        (
            "$__dateTimeFilter(dateCol, timeCol)",
            "(dateCol >= toDate('2014-11-12') AND dateCol <= toDate('2015-11-12')) AND "
            "(timeCol >= toDateTime(1415792726) AND timeCol <= toDateTime(1447328726))",
        ),
        ("$__timeInterval(col)", "toStartOfInterval(toDateTime(col), INTERVAL 20 second)"),
        ("$__timeInterval_ms(col)", "toStartOfInterval(toDateTime64(col, 3), INTERVAL 20000 millisecond)"),
        (
            "select toStartOfInterval(col, INTERVAL $__interval_s second)",
            "select toStartOfInterval(col, INTERVAL 20 second)",
        ),
    ],
)
def test_backend_macros(sql: str, want: str) -> None:
    assert interpolate(sql, FROM, TO, 20) == want


def test_interval_is_at_least_one_second() -> None:
    assert interpolate("($__interval_s) $__timeInterval(c)", FROM, TO, 0.2) == (
        "(1) toStartOfInterval(toDateTime(c), INTERVAL 1 second)"
    )


F2 = datetime(2014, 11, 12, 11, 45, 26, 123000, tzinfo=UTC)
T2 = datetime(2015, 11, 12, 11, 45, 26, 456000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sql", "want"),
    [  # TestInterpolate in macros_test.go
        ("select * from foo where $__timeFilter(cast(sth as timestamp))",
         "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= "
         "toDateTime(1447328726)"),
        ("select * from foo where $__timeFilter(cast(sth as timestamp) )",
         "select * from foo where cast(sth as timestamp) >= toDateTime(1415792726) AND cast(sth as timestamp) <= "
         "toDateTime(1447328726)"),
        ("select * from foo where $__timeFilter_ms(cast(sth as timestamp))",
         "select * from foo where cast(sth as timestamp) >= fromUnixTimestamp64Milli(1415792726123) AND "
         "cast(sth as timestamp) <= fromUnixTimestamp64Milli(1447328726456)"),
        ("select * from foo where ( date >= $__fromTime and date <= $__toTime ) limit 100",
         "select * from foo where ( date >= toDateTime(1415792726) and date <= toDateTime(1447328726) ) limit 100"),
        ("select * from foo where ( date >= $__fromTime ) and ( date <= $__toTime ) limit 100",
         "select * from foo where ( date >= toDateTime(1415792726) ) and ( date <= toDateTime(1447328726) ) limit 100"),
        ("select * from foo where ( date >= $__fromTime_ms and date <= $__toTime_ms ) limit 100",
         "select * from foo where ( date >= fromUnixTimestamp64Milli(1415792726123) and date <= "
         "fromUnixTimestamp64Milli(1447328726456) ) limit 100"),
    ],
)  # fmt: skip
def test_interpolate_like_the_sdk(sql: str, want: str) -> None:
    assert interpolate(sql, F2, T2, 20) == want


def test_argless_macro_swallows_up_to_the_next_parenthesis_like_the_sdk() -> None:
    # The SDK's parser scans on from $__fromTime to the next '(' ... ')' pair; check() flags it.
    sql = "SELECT * FROM t WHERE ts >= $__fromTime AND f(x) = 1"
    assert interpolate(sql, FROM, TO, 20) == "SELECT * FROM t WHERE ts >= toDateTime(1415792726) = 1"
    assert check(sql) and not check("WHERE (ts >= $__fromTime) AND f(x)")


def test_wrong_argument_count_is_an_error() -> None:
    with pytest.raises(DashboardError):
        interpolate("$__dateTimeFilter(a)", FROM, TO, 20)


@pytest.mark.parametrize(
    ("sql", "variables", "want"),
    [  # CHDatasource.test.ts "Conditional All"
        ("select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);",
         {"fieldVal": "$__all"}, "select stuff from table where 1=1;"),
        ("select stuff from table where $__conditionalAll(fieldVal in ($fieldVal), $fieldVal);",
         {"fieldVal": "'val1', 'val2'"}, "select stuff from table where fieldVal in ($fieldVal);"),
        ("select foo from table where $__conditionalAll(bar in ($bar), $bar) and "
         "$__conditionalAll(bar in ($bar2), $bar2);",
         {"bar": "'val1', 'val2'", "bar2": "$__all"}, "select foo from table where bar in ($bar) and 1=1;"),
        ("where $__conditionalAll(v IN (${v:sqlstring}), ${v})", {"v": ""}, "where 1=1"),
        ("where $__conditionalAll(v IN (${v:sqlstring}), $v)", {}, "where v IN (${v:sqlstring})"),
    ],
)  # fmt: skip
def test_conditional_all(sql: str, variables: dict[str, str], want: str) -> None:
    assert apply_conditional_all(sql, variables) == want


def test_template_variables_and_formats() -> None:
    variables = {"p": "o'hara", "m": ["a", "b'c"], "n": "7"}
    assert replace_variables("${p:sqlstring} ${m:sqlstring} $n [[n]] ${n} $unknown", variables) == (
        "'o''hara' 'a','b''c' 7 7 7 $unknown"
    )
    assert replace_variables("${m} ${p:singlequote}", variables) == "'a','b'c' 'o\\'hara'"  # unescaped: use sqlstring


def test_expand_order_conditional_then_variables_then_macros() -> None:
    sql = "SELECT 1 WHERE $__timeFilter(ts) AND $__conditionalAll(product IN (${product:sqlstring}), $product)"
    assert expand_macros(sql, FROM, TO, 60, {"product": "checkout"}) == (
        "SELECT 1 WHERE ts >= toDateTime(1415792726) AND ts <= toDateTime(1447328726) AND product IN ('checkout')"
    )
    assert expand_macros(sql, FROM, TO, 60, {"product": ALL}).endswith("AND 1=1")


def test_bind_puts_values_in_parameters_not_sql() -> None:
    sql = "WHERE $__conditionalAll(product IN (${product:sqlstring}), $product) AND x = ${v:sqlstring}"
    text, params = bind(sql, FROM, TO, 60, {"product": "<script>'", "v": ["a", "b"]})
    assert text == "WHERE product IN ({v_product_0:String}) AND x = {v_v_0:String}, {v_v_1:String}"
    assert params == {"v_product_0": "<script>'", "v_v_0": "a", "v_v_1": "b"}


def test_no_dashboard_query_trips_the_sdk_parser() -> None:
    texts = []
    for d in all_dashboards():
        if d.datasource != "clickhouse":
            continue
        texts += [q.text for p in d.panels for q in p.queries]
        texts += [v.query.text for v in d.variables] + [a.query.text for a in d.annotations]
    assert len(texts) > 30
    assert [problem for t in texts for problem in check(t)] == []
