"""Every query of every ClickHouse dashboard, expanded as the plugin does, runs on chDB over the scenario.

Each panel query, variable query and annotation query returns exactly the
columns its definition names, and at least one row, against a store filled
with two weeks of synthetic traffic by the worker's write path.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from support.scenario_store import Scenario

from dashboards.in_words import evidence_in_words
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
    assert {r[0] for r in evidence} == flagged
    words = {r[1]: r[-1] for r in evidence}
    assert not any("{" in w or "[" in w for w in words.values()), words  # sentences, not JSON
    decaying = store.story["decaying_product"]
    assert words["composite"].startswith(f"{decaying} is a redesign candidate since "), words["composite"]
    for dim in ("customer experience", "performance"):
        assert re.fullmatch(
            rf"{dim.capitalize()} scores \d+/100 against a floor of 55, below floor on \d+ of the last 14 days, "
            r"falling 1.5 points a day \(p < 0.001\): against the reference \S+, crash-free sessions fell from "
            r"98.50% to 94.00%\.",
            words[dim],
        ), words[dim]  # the signal scoring 100 (latency within its SLO) is not evidence


def _in_words(store: Scenario, evidence: str, dimension: str) -> str:
    row = (f"SELECT 'checkout' AS product, '{dimension}' AS dimension, 41.23 AS score, 70.0 AS floor, "
           "3 AS days_below, nan AS trend, 1 AS redesign_candidate, {evidence:String} AS evidence")  # fmt: skip
    return store.client.query(
        f"SELECT {evidence_in_words()} FROM ({row})", parameters={"evidence": evidence}
    ).result_rows[0][0]


def test_the_table_prints_the_stored_sentences(store: Scenario) -> None:
    """The table shows the sentences the scorecard stored (alerts/evidence.py), exactly; it renders nothing itself."""
    sentences = json.dumps({"sentences": ["checkout is a redesign candidate.", "Latency rose from 200 to 900 ms."],
                            "evidence": [{"kind": "redesign_candidate", "reasons": ["ignored"]}]})  # fmt: skip
    assert (
        _in_words(store, sentences, "composite") == "checkout is a redesign candidate. Latency rose from 200 to 900 ms."
    )
    old = _in_words(store, json.dumps({"signals": [{"signal": "latency_p95_ms", "value": 1520.4}]}), "performance")
    assert old == "performance scores 41.2 against a floor of 70 (stored without its evidence in words)."


def test_series_end_at_the_last_complete_bucket(store: Scenario) -> None:
    """The bucket holding the range's end is partial (it would read as a drop): no series returns it."""
    end = store.cfg.start + store.cfg.span
    to = end.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5, minutes=-20)  # 20 min into an hour
    d = next(d for d in CLICKHOUSE if d.uid == "pulse-portfolio")
    panels = {p.title: p for p in d.panels}

    def last_bucket(title: str, to: datetime) -> datetime:
        q = panels[title].queries[0]
        sql = expand_macros(q.text, to - timedelta(days=14), to, INTERVAL_S, {"product": ALL})
        rows = store.client.query(sql).result_rows
        assert rows, title
        return max(r[0] for r in rows).replace(tzinfo=UTC)

    hour = to.replace(minute=0)
    assert last_bucket("Sessions", to) == hour - timedelta(hours=1)  # 14:00-15:00 complete, 15:00-15:20 left out
    assert last_bucket("Sessions", hour + timedelta(hours=1)) == hour  # at 16:00 sharp, 15:00 is complete
    day = datetime.combine(to.date(), datetime.min.time(), UTC)
    assert last_bucket("Daily active users", to) == day - timedelta(days=1)  # today (partial) left out
