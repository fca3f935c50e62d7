"""Redesign scorecards on a real chDB store filled with two weeks of the ``regression_and_decay`` scenario.

The decaying product is healthy for its first days (the scenario's decay starts after 30% of the span): a
product is scored against its own earliest level - its earliest two weeks, or for a store this young its first
week, which takes in the decay's first days - so its decline is measured from there.

The store also holds a crafted product, ``slowpoke``: healthy traffic whose request latencies are 20x - far
over its SLO on every day - and nothing else wrong. It is bad on one dimension only, so it is not a candidate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from support.scenario_store import Scenario, close_scenario, fixed_end, open_scenario, write_events

from alerts.scorecard import compute_scorecards, redesign_samples, store_scorecards
from alerts.scorecard_config import DIMENSIONS
from pipeline.events import Request
from pipeline.tools import synth

HEALTHY = ("checkout", "feed", "billing")
END = fixed_end()


def _slow_traffic() -> Iterator[object]:
    cfg = synth.TrafficConfig(
        seed=11, start=END - timedelta(days=14), span=timedelta(days=14), products=("slowpoke",),
        users_per_product=150, scenario="steady",
    )  # fmt: skip
    for ev in synth.traffic(cfg):
        yield ev.model_copy(update={"latency_ms": ev.latency_ms * 20}) if isinstance(ev, Request) else ev


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    scenario = open_scenario(  # a store of its own: the slow product below is written into it
        tmp_path_factory.mktemp("scorecard"), scenario="regression_and_decay", users_per_product=150, end=END
    )
    write_events(scenario.client, scenario.database, _slow_traffic())  # type: ignore[arg-type]
    yield scenario
    close_scenario(scenario)


def test_decaying_product_and_no_healthy_one_is_a_candidate(sc: Scenario) -> None:
    cards = {c.product: c for c in compute_scorecards(sc.client, sc.database, END)}
    decaying = sc.story["decaying_product"]
    assert set(cards) >= {*HEALTHY, decaying, "slowpoke"}
    assert cards[decaying].redesign_candidate
    for product in HEALTHY:
        assert not cards[product].redesign_candidate, cards[product].to_json()
    doc = cards[decaying].to_json()
    below = [name for name, d in doc["dimensions"].items() if d["below_floor"]]
    assert len(below) >= 2
    # the evidence names each dimension below its floor, with the signals, values and baselines behind it
    named = {e["dimension"]: e for e in doc["evidence"] if e["kind"] == "dimension_below_floor"}
    assert set(named) == set(below)
    for e in named.values():
        assert e["score"] < e["floor"] and e["days_below"] >= 1
        # Every window of a store this young shares days with its first-week reference: no trend is fitted.
        assert e["trend_per_day"] is None and not e["declining"]
        assert e["signals"] and all({"signal", "value", "baseline", "score"} <= set(s) for s in e["signals"])
        assert e["score_ci"][1] < e["floor"]  # confidently below
    summary = doc["evidence"][0]
    assert summary["kind"] == "redesign_candidate" and summary["reasons"] and summary["sentences"]
    assert doc["sentences"][0].startswith(f"{decaying} is a redesign candidate")
    assert "daily active users fell from" in " ".join(doc["sentences"])
    json.dumps(doc)  # what `pulse scorecard --format json` prints must be JSON


def test_bad_on_one_dimension_only_is_not_a_candidate(sc: Scenario) -> None:
    card = next(c for c in compute_scorecards(sc.client, sc.database, END) if c.product == "slowpoke")
    perf = card.dimensions["performance"]
    assert perf.below_floor and perf.days_below >= 10  # latency far over its SLO the whole period
    latency = next(s for s in perf.signals if s.signal == "latency_p95_ms")
    assert latency.score == 0.0 and latency.value is not None and latency.value > 2 * 1000
    assert card.dimensions_below == ["performance"]
    assert not card.redesign_candidate


def test_json_shape_for_the_cli(sc: Scenario) -> None:
    for card in compute_scorecards(sc.client, sc.database, END):
        doc = card.to_json()
        assert isinstance(doc["redesign_candidate"], bool) and isinstance(doc["evidence"], list)
        assert set(doc["dimensions"]) == set(DIMENSIONS)
        for d in doc["dimensions"].values():
            assert {"score", "score_ci", "floor", "below_floor"} <= set(d)
            # Below floor is a claim of the interval (or of a falling trend), never of a point score alone.
            if d["below_floor"]:
                assert d["score"] < d["floor"] and (d["score_ci"][1] < d["floor"] or d["declining"])
        assert doc["sentences"] and all(isinstance(s, str) for s in doc["sentences"])


def test_only_data_before_now_counts(sc: Scenario) -> None:
    # Four days into the span the decay has barely begun: nobody is a candidate yet.
    early = END - timedelta(days=10)
    cards = compute_scorecards(sc.client, sc.database, early)
    assert cards and not any(c.redesign_candidate for c in cards)
    assert all(c.day is not None and c.day < early.date() for c in cards)


def test_redesign_samples_and_stored_rows_round_trip(sc: Scenario) -> None:
    at = END + timedelta(minutes=1)
    samples = redesign_samples(sc.client, sc.database, END, store=True)
    by_product = {s.labels["product"]: s for s in samples}
    assert all(set(s.labels) == {"product"} for s in samples)
    assert by_product[sc.story["decaying_product"]].value == 1.0
    assert by_product[sc.story["decaying_product"]].evidence["dimensions_below_floor"]
    assert all(by_product[p].value == 0.0 for p in (*HEALTHY, "slowpoke"))

    cards = compute_scorecards(sc.client, sc.database, END)
    store_scorecards(sc.client, sc.database, cards, at)
    rows = sc.client.query(
        f"SELECT product, dimension, score, floor, below_floor, days_below, trend, redesign_candidate, evidence "
        f"FROM {sc.database}.product_scorecards FINAL WHERE at = {{at:DateTime64(3)}} ORDER BY product, dimension",
        parameters={"at": at},
    ).result_rows
    assert len(rows) == len(cards) * (len(DIMENSIONS) + 1)
    stored = {(r[0], r[1]): r for r in rows}
    for card in cards:
        for name, d in card.dimensions.items():
            row = stored[(card.product, name)]
            assert row[2] == pytest.approx(d.score) and row[3] == d.floor
            assert (row[4], row[5], row[7]) == (int(d.below_floor), d.days_below, int(card.redesign_candidate))
            assert json.loads(row[8])["dimension"] == name
        composite = stored[(card.product, "composite")]
        assert json.loads(composite[8])["redesign_candidate"] == card.redesign_candidate
