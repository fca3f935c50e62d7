"""A scenario store for dashboard tests: synthetic traffic plus the evaluator's tables (filled by hand here).

The scenario (``tests/support/scenario_store.py``) writes weeks of traffic through the
worker's write path. Scorecards, release verdicts and alert events are the
alert evaluator's output, which these tests do not run: the fixture inserts a
plausible history of them (the decaying product below floor on two dimensions
and marked as a redesign candidate; the regressing release with a severe
verdict), plus a product whose name is HTML, to prove the pages escape it.

Ingest refuses such a name now (identifiers are restricted, ``pipeline.schema``), but a store may
hold rows written before, so the pages must still escape it: its traffic is written under a
placeholder name through the write path, then renamed in the store (:func:`rename_product`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.evidence import dimension_sentence, scorecard_sentences
from pipeline.tools import synth
from support.scenario_store import Scenario, close_scenario, open_scenario, write_events

EVIL = "<script>alert(1)</script>"
PLACEHOLDER = "evil-placeholder"
# Tables with a product column that the write path fills (the unique-user tables through their views on events).
_COPIED = ("events", "product_metrics_1m", "breakdown_metrics_1m")
_FILLED_BY_VIEWS = ("users_1d", "feature_users_1d")
DIMENSIONS = ("business impact", "customer experience", "post-launch support", "performance")


def _scorecards(products: list[str], decaying: str, end: datetime) -> list[list[object]]:
    rows: list[list[object]] = []
    for day in range(14, -1, -1):
        at = end - timedelta(days=day, hours=1)
        for p_index, product in enumerate(products):
            scores = []
            for d_index, dim in enumerate(DIMENSIONS):
                score = 70.0 + 3 * p_index + 2 * d_index
                below = 0
                days_below = 0
                if product == decaying and dim in ("customer experience", "performance"):
                    score = 62.0 - (14 - day) * 1.5
                    below = int(score < 55)
                    days_below = sum(1 for k in range(day, 15) if 62.0 - (14 - k) * 1.5 < 55)
                scores.append((dim, score, below, days_below))
            n_below = sum(b for _, _, b, _ in scores)
            candidate = int(n_below >= 2)
            dims: dict[str, dict[str, Any]] = {}
            for dim, score, below, days_below in scores:
                # The shape alerts/scorecard.py's store_scorecards writes: a dimension's DimensionScore.to_json().
                dims[dim] = {"score": score, "floor": 55.0, "below_floor": bool(below), "days_below": days_below,
                             "declining": bool(below), "trend_per_day": -1.5 if below else 0.1,
                             "signals": []}  # fmt: skip
                if below:
                    dims[dim]["signals"] = [
                        {"signal": "crash_free_sessions", "value": 0.94, "baseline": 0.985, "score": 31.0},
                        {"signal": "latency_p95_ms", "value": 870.0, "baseline": 1000.0, "score": 100.0},
                    ]
            doc = _composite_evidence(product, dims, candidate, at)
            for dim, score, below, days_below in scores:
                # Each row carries its sentence from the one renderer, as store_scorecards writes it.
                evidence = {"product": product, "dimension": dim, **dims[dim],
                            "sentences": [dimension_sentence(dim, dims[dim], doc)]}  # fmt: skip
                rows.append([at, product, dim, score, 55.0, below, days_below, dims[dim]["trend_per_day"], candidate,
                             json.dumps(evidence)])  # fmt: skip
            composite = sum(s for _, s, _, _ in scores) / 4
            rows.append([at, product, "composite", composite, 60.0, int(composite < 60), 0, 0.0, candidate,
                         json.dumps(doc)])  # fmt: skip
    return rows


def _composite_evidence(product: str, dims: dict[str, dict[str, Any]], candidate: int, at: datetime) -> dict[str, Any]:
    """The composite row's evidence as the evaluator stores it (a Scorecard.to_json(), trimmed), with its sentences."""
    below = [name for name, d in dims.items() if d["below_floor"]]
    evidence: list[dict[str, Any]] = [{"kind": "dimension_below_floor", "dimension": d} for d in below]
    if candidate:
        entered = {"dimensions": below, "days_below": {n: dims[n]["days_below"] for n in below}, "of_days": 14}
        evidence.insert(0, {"kind": "redesign_candidate", "dimensions": below, "since": at.date().isoformat(),
                            "entered": entered})  # fmt: skip
    reference = [(at - timedelta(days=42)).date().isoformat(), (at - timedelta(days=28)).date().isoformat()]
    doc = {"product": product, "redesign_candidate": bool(candidate), "evidence": evidence, "dimensions": dims,
           "reference": reference, "policy": {"level": 0.95, "period_days": 14, "min_days_below": 5,
                                              "min_dimensions_below": 2, "exit_margin": 5}}  # fmt: skip
    return {**doc, "sentences": scorecard_sentences(doc)}


def fill_evaluator_tables(sc: Scenario, extra_products: list[str]) -> None:
    """Scorecards, verdicts and alert events like the evaluator writes them."""
    db, client, story = sc.database, sc.client, sc.story
    end = sc.cfg.start + sc.cfg.span
    products = list(sc.cfg.products) + extra_products
    client.insert(
        f"{db}.product_scorecards",
        _scorecards(products, story["decaying_product"], end),
        column_names=["at", "product", "dimension", "score", "floor", "below_floor", "days_below", "trend",
                      "redesign_candidate", "evidence"],
    )  # fmt: skip
    released = datetime.fromisoformat(story["regression_released_at"])
    verdicts = [
        [end - timedelta(hours=2), story["regressing_product"], story["regressing_version"], story["previous_version"],
         released, 86_400, signal, cand, base, test, p, verdict, severe, json.dumps({"signal": signal})]
        for signal, cand, base, test, p, verdict, severe in (
            ("crash_free_sessions", 0.91, 0.985, "two-proportion z", 1e-9, "regression", 1),
            ("latency_p95_ms", 840.0, 310.0, "mann-whitney u", 1e-6, "regression", 0),
            ("error_rate", 0.012, 0.011, "two-proportion z", 0.41, "no_change", 0),
        )
    ] + [[end - timedelta(hours=2), EVIL, "1.0.0", "0.9.0", end - timedelta(days=1), 3600, "error_rate",
          0.01, 0.01, "two-proportion z", 0.9, "no_change", 0, "{}"]]  # fmt: skip
    client.insert(
        f"{db}.release_verdicts",
        verdicts,
        column_names=["at", "product", "version", "baseline_version", "released_at", "bake_s", "signal",
                      "candidate_value", "baseline_value", "test", "p_value", "verdict", "severe", "evidence"],
    )  # fmt: skip
    t = end - timedelta(hours=3)
    zero = datetime(1970, 1, 1, tzinfo=UTC)
    alerts = [
        [t, "releases", "ReleaseRegression", "fp-1", {"product": story["regressing_product"]}, {"summary": "crash"},
         "firing", "fired", 0.91, t, t, t, zero, t, "{}"],
        [t, "products", "RedesignCandidate", "fp-2", {"product": story["decaying_product"]}, {"summary": "decay"},
         "firing", "fired", 2.0, t, t, t, zero, t, "{}"],
        [t, "products", "LowNps", "fp-3", {"product": EVIL}, {"summary": EVIL}, "firing", "fired", 1.0, t, t, t,
         zero, t, "{}"],
    ]  # fmt: skip
    client.insert(
        f"{db}.alert_events",
        alerts,
        column_names=["at", "rule_group", "alertname", "fingerprint", "labels", "annotations", "state", "transition",
                      "value", "active_at", "fired_at", "last_match_at", "resolved_at", "last_sent_at", "evidence"],
    )  # fmt: skip


def rename_product(sc: Scenario, old: str, new: str) -> None:
    """Rename a product in every stored table (copy under the new name, delete the old rows), as a legacy store.

    The names are literals in the SQL (test data without quotes or backslashes): ``INSERT ... SELECT``
    through ``command`` does not bind server-side parameters here.
    """
    assert not set("'\\") & set(old + new)
    for table in _COPIED:
        sc.client.command(
            f"INSERT INTO {sc.database}.{table} SELECT * REPLACE ('{new}' AS product) "
            f"FROM (SELECT * FROM {sc.database}.{table} WHERE product = '{old}')"  # beside it, WHERE reads the alias
        )
    for table in _COPIED + _FILLED_BY_VIEWS:
        sc.client.command(
            f"ALTER TABLE {sc.database}.{table} DELETE WHERE product = '{old}' SETTINGS mutations_sync = 2"
        )


def open_store(data_dir: Path) -> Scenario:
    """Two weeks of the regression-and-decay scenario (100 users per product), the HTML-named product, the tables."""
    sc = open_scenario(data_dir, users_per_product=100)
    try:
        evil = synth.TrafficConfig(
            seed=3, start=sc.cfg.start + sc.cfg.span - timedelta(days=2), span=timedelta(days=2),
            products=(PLACEHOLDER,), users_per_product=5,
        )  # fmt: skip
        write_events(sc.client, sc.database, synth.traffic(evil))
        rename_product(sc, PLACEHOLDER, EVIL)
        fill_evaluator_tables(sc, [EVIL])
    except BaseException:
        close_scenario(sc)
        raise
    return sc
