"""Every query of every ClickHouse dashboard, expanded as the plugin does, runs on chDB over the scenario.

Each panel query, variable query and annotation query returns exactly the
columns its definition names, and at least one row, against a store filled
with two weeks of synthetic traffic by the worker's write path.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from support.scenario_store import Scenario

from dashboards.macros import ALL, VarValue, expand_macros
from dashboards.model import Dashboard, Query
from dashboards.registry import all_dashboards

INTERVAL_S = 3600


def _queries(d: Dashboard) -> list[tuple[str, Query]]:
    out = [(f"{p.title} [{i}]", q) for p in d.panels for i, q in enumerate(p.queries)]
    out += [(f"variable {v.name}", v.query) for v in d.variables]
    out += [(f"annotation {a.name}", a.query) for a in d.annotations]
    return out


def _run(store: Scenario, q: Query, variables: dict[str, VarValue]) -> tuple[list[str], list[tuple[object, ...]]]:
    now = datetime.now(UTC)
    sql = expand_macros(q.text, now - timedelta(days=14), now, INTERVAL_S, variables)
    assert "$" not in sql, sql  # every macro and variable expanded
    result = store.client.query(sql)
    return list(result.column_names), result.result_rows


def _variables(uid: str, store: Scenario, version: str) -> dict[str, VarValue]:
    if uid == "pulse-product":
        return {"product": store.story["regressing_product"], "version": version}
    return {"product": ALL}


CLICKHOUSE = [d for d in all_dashboards("pulse") if d.datasource == "clickhouse"]


CASES = [(d, "all") for d in CLICKHOUSE] + [(d, "one") for d in CLICKHOUSE if d.uid == "pulse-product"]


@pytest.mark.parametrize(("dashboard", "version"), CASES, ids=[f"{d.uid}-{v}-versions" for d, v in CASES])
def test_every_query_returns_its_columns_with_rows(store: Scenario, dashboard: Dashboard, version: str) -> None:
    variables = _variables(dashboard.uid, store, store.story["regressing_version"] if version == "one" else ALL)
    checked = 0
    for name, q in _queries(dashboard):
        columns, rows = _run(store, q, variables)
        assert columns == list(q.columns), name
        assert rows, f"{dashboard.uid}: {name} returned no rows"
        numeric = [v for r in rows for v in r[len(q.keys) :] if isinstance(v, float)]
        assert not numeric or any(not math.isnan(v) for v in numeric), f"{name}: every value is NaN"
        checked += 1
    assert checked == len(_queries(dashboard))


def test_product_filter_narrows_to_one_product(store: Scenario) -> None:
    d = next(d for d in CLICKHOUSE if d.uid == "pulse-portfolio")
    q = next(p for p in d.panels if p.title == "Sessions").queries[0]
    _, all_rows = _run(store, q, {"product": ALL})
    _, one = _run(store, q, {"product": ["checkout"]})
    assert {r[1] for r in all_rows} >= set(store.cfg.products)
    assert {r[1] for r in one} == {"checkout"}


def test_version_filter_keeps_only_that_version(store: Scenario) -> None:
    d = next(d for d in CLICKHOUSE if d.uid == "pulse-releases")
    q = d.panels[0].queries[0]  # versions side by side, grouped by product and version
    _, rows = _run(store, q, {"product": [store.story["regressing_product"]]})
    versions = {r[1] for r in rows}
    assert {store.story["regressing_version"], store.story["previous_version"]} <= versions
    adoption = [r[2] for r in rows]
    assert math.isclose(sum(adoption), 1.0, rel_tol=1e-9)  # shares of one product's sessions


def test_redesign_candidate_is_the_decaying_product(store: Scenario) -> None:
    d = next(d for d in CLICKHOUSE if d.uid == "pulse-portfolio")
    q = d.panels[0].queries[0]
    columns, rows = _run(store, q, {"product": ALL})
    flagged = {r[0] for r in rows if r[columns.index("redesign_candidate")] == 1}
    assert flagged == {store.story["decaying_product"]}
    _, evidence = _run(store, d.panels[1].queries[0], {"product": ALL})
    assert {r[0] for r in evidence} == flagged and all(r[-1].startswith("{") for r in evidence)
