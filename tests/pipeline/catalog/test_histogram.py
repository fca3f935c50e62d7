"""The DDSketch-style latency histogram: the shipped bucketing and the shipped quantile SQL, run on chDB.

Values are bucketed with :func:`bucket_of` (what the aggregator stores), split
into partial rows as several batches would write them, stored in ClickHouse
columns of the shipped types, and read back with :func:`quantile_sql` (what
every catalog latency metric runs). The answers are compared with exact
quantiles of the same values - rank ``floor(q * (n - 1))`` of the sorted
values - within the histogram's relative error ``ALPHA`` (1%).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

import pytest
from clickhouse_connect.driver.client import Client

from pipeline import clickhouse
from pipeline.catalog.histogram import ALPHA, GAMMA, MIN_MS, ZERO_BUCKET, bucket_of, quantile_sql
from pipeline.settings import Settings

TOLERANCE = ALPHA * (1 + 1e-9)  # the bound is exact at bucket edges; allow float rounding
QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0)
_tables = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("histogram"))
    ch = clickhouse.connect(settings)
    ch.command("CREATE DATABASE IF NOT EXISTS histogram_test")
    yield ch
    ch.close()
    clickhouse.release(settings)


def latencies(n: int = 10_000, seed: int = 20240501) -> list[float]:
    """Lognormal latencies from ~0.01 ms to ~minutes, median ~ 50 ms."""
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(50), 2.0) for _ in range(n)]


def exact(values: Sequence[float], q: float) -> float:
    return sorted(values)[math.floor(q * (len(values) - 1))]


def stored_quantiles(
    client: Client, groups: Mapping[int, Sequence[float]], qs: Sequence[float], parts: int = 7
) -> dict[int, list[float]]:
    """Per group, ``quantile_sql(q)`` for each q over its values, stored as ``parts`` partial histograms."""
    table = f"histogram_test.h{next(_tables)}"
    client.command(
        f"CREATE TABLE {table} (g UInt32, latency_bucket Array(Int16), latency_count Array(UInt64)) ENGINE = Memory"
    )
    rows = []
    for g, values in groups.items():
        for i in range(parts):
            hist = sorted(Counter(bucket_of(v) for v in values[i::parts]).items())
            rows.append([g, [b for b, _ in hist], [c for _, c in hist]])
    client.insert(table, rows, column_names=["g", "latency_bucket", "latency_count"])
    select = ", ".join(quantile_sql(q) for q in qs)
    result = client.query(f"SELECT g, {select} FROM {table} GROUP BY g ORDER BY g").result_rows
    return {int(r[0]): [float(v) for v in r[1:]] for r in result}


def relative_error(approx: float, exact: float) -> float:
    return abs(approx - exact) / exact


def test_every_value_alone_reads_back_within_one_percent(client: Client) -> None:
    values = latencies(3_000, seed=1) + [MIN_MS * 1.0001, 0.01, 1.0, 1.01, 999.99, 60_000.0, 86_400_000.0]
    got = stored_quantiles(client, {i: [v] for i, v in enumerate(values)}, (0.5,), parts=1)
    worst = max(relative_error(got[i][0], v) for i, v in enumerate(values))
    assert worst <= TOLERANCE
    assert worst > ALPHA / 2  # the reported value is the bucket's representative, not the value itself


@pytest.mark.parametrize(("n", "seed"), [(10_000, 20240501), (3_001, 11), (2, 5)])
def test_quantiles_of_merged_partials_are_within_one_percent_of_exact(client: Client, n: int, seed: int) -> None:
    values = latencies(n, seed)
    (got,) = stored_quantiles(client, {0: values}, QUANTILES).values()
    errors = {q: relative_error(approx, exact(values, q)) for q, approx in zip(QUANTILES, got, strict=True)}
    assert max(errors.values()) <= TOLERANCE, errors


def test_quantiles_follow_the_rank_not_the_mean(client: Client) -> None:
    # 90 fast requests and 10 slow ones: p50 and p89 are fast, p95 and p100 are slow - nothing in between.
    values = [10.0] * 90 + [5_000.0] * 10
    (got,) = stored_quantiles(client, {0: values}, (0.5, 0.89, 0.95, 1.0)).values()
    assert got == pytest.approx([10.0, 10.0, 5_000.0, 5_000.0], rel=TOLERANCE)


def test_merging_partials_equals_one_histogram(client: Client) -> None:
    values = latencies(4_000, seed=5)
    one = stored_quantiles(client, {0: values}, QUANTILES, parts=1)
    many = stored_quantiles(client, {0: values}, QUANTILES, parts=13)
    assert one == many


def test_groups_do_not_mix(client: Client) -> None:
    fast, slow = latencies(1_000, seed=2), [v * 100 for v in latencies(1_000, seed=3)]
    got = stored_quantiles(client, {1: fast, 2: slow}, (0.5,))
    assert relative_error(got[1][0], exact(fast, 0.5)) <= TOLERANCE
    assert relative_error(got[2][0], exact(slow, 0.5)) <= TOLERANCE


def test_zero_latencies_give_zero_quantile(client: Client) -> None:
    (got,) = stored_quantiles(client, {0: [0.0] * 60 + [10.0] * 40}, (0.5, 0.99)).values()
    assert got[0] == 0.0
    assert relative_error(got[1], 10.0) <= TOLERANCE


def test_an_empty_histogram_has_no_quantile(client: Client) -> None:
    (got,) = stored_quantiles(client, {0: []}, (0.5,), parts=1).values()
    assert math.isnan(got[0])


def test_bucket_bounds() -> None:
    for v in latencies(2_000, seed=7):
        i = bucket_of(v)
        assert GAMMA ** (i - 1) < v * (1 + 1e-12)
        assert v <= GAMMA**i * (1 + 1e-12)


def test_buckets_are_monotonic() -> None:
    values = sorted(latencies(5_000, seed=3))
    indexes = [bucket_of(v) for v in values]
    assert indexes == sorted(indexes)


@pytest.mark.parametrize("v", [0.0, -0.0, MIN_MS / 2, MIN_MS])
def test_tiny_latency_maps_to_zero_bucket(v: float) -> None:
    assert bucket_of(v) == ZERO_BUCKET


def test_zero_bucket_is_below_every_real_bucket() -> None:
    assert bucket_of(math.nextafter(MIN_MS, math.inf)) > ZERO_BUCKET


@pytest.mark.parametrize("q", [-0.01, 1.01, 2, -1, float("nan"), float("inf")])
def test_quantile_sql_rejects_q_outside_unit_interval(q: float) -> None:
    with pytest.raises(ValueError):
        quantile_sql(q)
