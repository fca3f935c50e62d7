"""Unit tests of the DDSketch-style latency histogram."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from pipeline.catalog.histogram import ALPHA, GAMMA, MIN_MS, ZERO_BUCKET, bucket_of, bucket_value, quantile_sql

TOLERANCE = ALPHA * (1 + 1e-9)  # the bound is exact at bucket edges; allow float rounding


def latencies(n: int = 10_000, seed: int = 20240501) -> list[float]:
    """Lognormal latencies from ~0.01 ms to ~minutes, median ~ 50 ms."""
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(50), 2.0) for _ in range(n)]


def merged_histogram(values: list[float], parts: int = 7) -> dict[int, int]:
    """Bucket counts of ``values`` computed in ``parts`` partials and merged by adding (like sumMap)."""
    merged: Counter[int] = Counter()
    for i in range(parts):
        merged.update(Counter(bucket_of(v) for v in values[i::parts]))
    return dict(merged)


def histogram_quantile(hist: dict[int, int], q: float) -> float:
    """The rank rule of quantile_sql: first bucket whose cumulative count exceeds q*(n-1)."""
    n = sum(hist.values())
    rank = q * (n - 1)
    cumulative = 0
    for index in sorted(hist):
        cumulative += hist[index]
        if cumulative > rank:
            return bucket_value(index)
    raise AssertionError("unreachable: the last cumulative count is n > q*(n-1)")


def relative_error(approx: float, exact: float) -> float:
    return abs(approx - exact) / exact


def test_every_value_is_within_one_percent():
    values = latencies()
    worst = max(relative_error(bucket_value(bucket_of(v)), v) for v in values)
    assert worst <= TOLERANCE


def test_bucket_bounds():
    for v in latencies(2_000, seed=7):
        i = bucket_of(v)
        assert GAMMA ** (i - 1) < v * (1 + 1e-12)
        assert v <= GAMMA**i * (1 + 1e-12)


@pytest.mark.parametrize("v", [MIN_MS * 1.0001, 0.01, 1.0, 1.01, 999.99, 60_000.0, 86_400_000.0])
def test_extreme_values_are_within_one_percent(v):
    assert relative_error(bucket_value(bucket_of(v)), v) <= TOLERANCE


def test_buckets_are_monotonic():
    values = sorted(latencies(5_000, seed=3))
    indexes = [bucket_of(v) for v in values]
    assert indexes == sorted(indexes)


@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantiles_from_merged_buckets_are_within_one_percent(q):
    values = latencies()
    exact = sorted(values)[math.floor(q * (len(values) - 1))]
    approx = histogram_quantile(merged_histogram(values), q)
    assert relative_error(approx, exact) <= TOLERANCE


@pytest.mark.parametrize("q", [0.0, 0.25, 0.75, 0.999, 1.0])
def test_other_quantiles_are_within_one_percent(q):
    values = latencies(3_001, seed=11)
    exact = sorted(values)[math.floor(q * (len(values) - 1))]
    assert relative_error(histogram_quantile(merged_histogram(values), q), exact) <= TOLERANCE


def test_merging_partials_equals_one_histogram():
    values = latencies(4_000, seed=5)
    assert merged_histogram(values, parts=1) == merged_histogram(values, parts=13)
    assert sum(merged_histogram(values).values()) == len(values)


@pytest.mark.parametrize("v", [0.0, -0.0, MIN_MS / 2, MIN_MS])
def test_tiny_latency_maps_to_zero_bucket(v):
    assert bucket_of(v) == ZERO_BUCKET
    assert bucket_value(bucket_of(v)) == 0.0


def test_zero_bucket_is_below_every_real_bucket():
    smallest = math.nextafter(MIN_MS, math.inf)
    assert bucket_of(smallest) > ZERO_BUCKET
    assert bucket_value(ZERO_BUCKET) == 0.0
    assert bucket_value(ZERO_BUCKET - 5) == 0.0


def test_zero_latencies_give_zero_quantile():
    hist = merged_histogram([0.0] * 60 + [10.0] * 40)
    assert histogram_quantile(hist, 0.5) == 0.0
    assert relative_error(histogram_quantile(hist, 0.99), 10.0) <= TOLERANCE


@pytest.mark.parametrize("q", [-0.01, 1.01, 2, -1, float("nan"), float("inf")])
def test_quantile_sql_rejects_q_outside_unit_interval(q):
    with pytest.raises(ValueError):
        quantile_sql(q)


@pytest.mark.parametrize("q", [0, 0.5, 0.99, 1])
def test_quantile_sql_accepts_unit_interval(q):
    sql = quantile_sql(q, buckets="b_col", counts="c_col")
    assert "sumMap(b_col, c_col)" in sql
    assert f"c > {q} * (" in sql
    assert str(ZERO_BUCKET) in sql
    assert repr(GAMMA) in sql
    assert sql.count("(") == sql.count(")")
