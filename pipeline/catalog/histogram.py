"""The latency histogram shared by the aggregator (writes) and the metric catalog (reads).

Log-spaced buckets in the DDSketch mapping: bucket ``i`` holds latencies in
``(gamma^(i-1), gamma^i]`` with ``gamma = (1+a)/(1-a)``; reporting a bucket as
``2*gamma^i/(gamma+1)`` is within relative error ``a`` of every value in it, so
any quantile read from merged buckets is within ``a`` (1%) of the exact one.
Buckets from any number of partials merge by adding counts (``sumMap``).
"""

from __future__ import annotations

import math

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
MIN_MS = 0.001
ZERO_BUCKET = -400  # every latency <= MIN_MS


def bucket_of(ms: float) -> int:
    if ms <= MIN_MS:
        return ZERO_BUCKET
    return math.ceil(math.log(ms) / _LOG_GAMMA)


def quantile_sql(q: float, buckets: str = "latency_bucket", counts: str = "latency_count") -> str:
    """ClickHouse expression: the q-quantile of merged histogram columns (rank q*(n-1), like DDSketch)."""
    if not 0 <= q <= 1:
        raise ValueError("quantile must be within [0, 1]")
    h = f"sumMap({buckets}, {counts})"
    total = f"arraySum(({h}).2)"
    chosen = f"({h}).1[arrayFirstIndex(c -> c > {q} * ({total} - 1), arrayCumSum(({h}).2))]"
    value = f"2 * pow({GAMMA!r}, {chosen}) / ({GAMMA!r} + 1)"
    return f"if({total} = 0, nan, if({chosen} <= {ZERO_BUCKET}, 0, {value}))"
