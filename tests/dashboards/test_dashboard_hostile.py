"""Every ClickHouse panel query, with hostile variable values, runs on chDB and returns nothing it should not.

Issue 17 finding 2: a version ``\\') AND 0 UNION ALL SELECT currentUser(), version() --`` broke out of
``${version:sqlstring}`` (which doubles ``'`` but leaves ``\\``) and returned the server's user and version
through the Releases panel. Grafana sends a variable's values as whatever the URL or the variable's query
says, so a dashboard must hold for any value: every query of every dashboard, expanded as the plugin does
(and bound as the built-in view does), answers a hostile value exactly as it answers a value that names
no product - no error, the same columns, the same rows - and a hostile value beside a real one as the
real one alone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from support.scenario_store import Scenario

from dashboards.macros import ALL, VarValue, bind, expand_macros, percent_encode
from dashboards.model import Dashboard, Query
from dashboards.registry import all_dashboards

INTERVAL_S = 3600
NOW = datetime.now(UTC)
HOSTILE = [
    "\\') AND 0 UNION ALL SELECT currentUser(), version() --",
    "\\' OR 1=1 OR '",
    "') OR 1=1 --",
    "'; DROP TABLE x; --",
    "\\",
    "a,b",  # the multi-value separator of the percentencode format
    "{a}",
    "%27) OR 1=1 --",  # an already percent-encoded quote
    "pay\u202elapyap",
    "\x00\n\x1b[2J",
    "${product}",
]
NOBODY = "no-such-product"  # a value that matches nothing: the answer every hostile value must get

CLICKHOUSE = [d for d in all_dashboards("pulse") if d.datasource == "clickhouse"]


def _queries(d: Dashboard) -> list[tuple[str, Query]]:
    out = [(f"{p.title} [{i}]", q) for p in d.panels for i, q in enumerate(p.queries)]
    out += [(f"variable {v.name}", v.query) for v in d.variables]
    out += [(f"annotation {a.name}", a.query) for a in d.annotations]
    return out


CASES = [(d, name, q) for d in CLICKHOUSE for name, q in _queries(d)]
IDS = [f"{d.uid}: {name}" for d, name, _ in CASES]


def _grafana(store: Scenario, q: Query, variables: dict[str, VarValue]) -> tuple[list[str], list[str]]:
    sql = expand_macros(q.text, NOW - timedelta(days=14), NOW, INTERVAL_S, variables)
    result = store.client.query(sql)
    return list(result.column_names), _norm(result.result_rows)


def _builtin(store: Scenario, q: Query, variables: dict[str, VarValue]) -> tuple[list[str], list[str]]:
    sql, params = bind(q.text, NOW - timedelta(days=14), NOW, INTERVAL_S, variables)
    result = store.client.query(sql, parameters=params)
    return list(result.column_names), _norm(result.result_rows)


def _norm(rows: list[tuple[object, ...]]) -> list[str]:
    """Rows in a comparable form: sorted, floats to 9 digits (a sum's last bits depend on the threads' order)."""
    return sorted(repr(tuple(f"{v:.9g}" if isinstance(v, float) else v for v in r)) for r in rows)


def _both(product: VarValue, version: VarValue) -> dict[str, VarValue]:
    return {"product": product, "version": version}


@pytest.mark.parametrize("run", [_grafana, _builtin], ids=["grafana", "builtin"])
@pytest.mark.parametrize(("dashboard", "name", "q"), CASES, ids=IDS)
def test_a_hostile_value_gets_the_answer_of_a_value_that_matches_nothing(
    store: Scenario, dashboard: Dashboard, name: str, q: Query, run: object
) -> None:
    execute = run  # _grafana or _builtin
    for field in ("product", "version"):
        nobody = execute(store, q, _both(ALL, ALL) | {field: [NOBODY]})  # type: ignore[operator]
        assert not nobody[1] or nobody[0] == list(q.columns), name  # (an empty answer may name no columns)
        forms = [[v] for v in HOSTILE] + [HOSTILE[0], [NOBODY, HOSTILE[0]]]  # also a single value, and beside one
        for form in forms:
            got = execute(store, q, _both(ALL, ALL) | {field: form})  # type: ignore[operator]
            assert got == nobody, f"{name}: {field}={form!r} answered differently from {NOBODY!r}"


@pytest.mark.parametrize(("dashboard", "name", "q"), CASES, ids=IDS)
def test_a_hostile_value_beside_a_real_one_gets_the_real_ones_answer(
    store: Scenario, dashboard: Dashboard, name: str, q: Query
) -> None:
    real = store.story["regressing_product"]
    want = _grafana(store, q, _both([real], ALL))
    for value in HOSTILE:
        assert _grafana(store, q, _both([real, value], ALL)) == want, f"{name}: {value!r}"
        assert _builtin(store, q, _both([real, value], ALL)) == want, f"{name}: {value!r}"


def test_the_releases_panel_leaks_nothing_through_the_version_variable(store: Scenario) -> None:
    """The issue's reproduction: the Releases panel with the hostile version selected."""
    ((user, server),) = store.client.query("SELECT currentUser(), version()").result_rows
    for d in CLICKHOUSE:
        for name, q in _queries(d):
            for variables in (_both(ALL, [HOSTILE[0]]), _both([HOSTILE[0]], ALL), _both(HOSTILE[0], HOSTILE[0])):
                sql = expand_macros(q.text, NOW - timedelta(days=14), NOW, INTERVAL_S, variables)
                rows = store.client.query(sql).result_rows
                assert not any(str(v) in (user, server) for r in rows for v in r), (d.uid, name, rows[:3])


def test_the_all_sentinel_as_a_value_means_all(store: Scenario) -> None:
    """``$__all`` is Grafana's All: as a value it selects everything, which is why ingest refuses it as a name."""
    for d in CLICKHOUSE:
        for name, q in _queries(d):
            assert _grafana(store, q, _both(["$__all"], ALL)) == _grafana(store, q, _both(ALL, ALL)), name


def test_every_variable_reaches_sql_percent_encoded_or_only_as_the_all_test() -> None:
    """No query splices a variable in any other format (``sqlstring``, ``singlequote``, raw): it could break out."""
    for d in CLICKHOUSE:
        for name, q in _queries(d):
            rest = re.sub(r"'\$\{\w+:percentencode\}'", "", q.text)  # inside a literal ClickHouse decodes
            rest = re.sub(r", \$\w+\)", ")", rest)  # $__conditionalAll(..., $var): only compared with All
            assert not re.search(r"\$(?!__)\w|\$\{|\[\[", rest), f"{d.uid}: {name}: {q.text}"


def test_percentencode_is_grafanas_strict_encoding() -> None:
    assert percent_encode("foo()bar BAZ") == "foo%28%29bar%20BAZ"
    assert percent_encode(["foo()bar BAZ", "test2"]) == "%7Bfoo%28%29bar%20BAZ%2Ctest2%7D"  # Grafana's own test
    encoded = percent_encode(["\\') AND 0 --", "'; DROP TABLE x; --", "pay\u202elapyap"])
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]*", encoded)  # nothing that ends a literal or escapes in one
