"""Per-product event rate limits: one token bucket per product, shared by every route of the collector.

A request costs one token per event it would produce, per product. It is
admitted whole or not at all: when any product of it lacks tokens the answer
is ``429`` with ``Retry-After`` (the seconds until its bucket holds enough),
and nothing of the request is produced or charged - the same all-or-nothing
rule as a 400. A request larger than a bucket can ever hold is refused with
413 instead, since waiting could not help. Every SDK the standards' routes
serve honours 429 and ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.collector.errors import Rejected


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    """Token buckets of ``rate`` events/s per product, each holding at most ``burst`` events."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _refilled(self, product: str, now: float) -> _Bucket:
        bucket = self._buckets.get(product)
        if bucket is None:
            bucket = self._buckets[product] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def admit(self, costs: Counter[str]) -> None:
        """Charge ``costs`` (events per product) or raise 429 / 413 and charge nothing."""
        now = self.clock()
        buckets = {product: self._refilled(product, now) for product in costs}
        for product, cost in sorted(costs.items()):
            if cost > self.burst:
                raise Rejected(413, f"{cost} events of product {product!r} in one request; the rate limit admits "
                               f"at most {self.burst:.0f} at once", "over_burst")  # fmt: skip
            short = cost - buckets[product].tokens
            if short > 0:
                wait = max(1, math.ceil(short / self.rate))
                raise Rejected(
                    429,
                    f"product {product!r} is over its rate limit of {self.rate:g} events/s; retry later",
                    "rate_limited",
                    headers={"Retry-After": str(wait)},
                )
        for product, cost in costs.items():
            buckets[product].tokens -= cost

    def refund(self, costs: Counter[str]) -> None:
        """Give back what an admitted request was charged when Kafka did not take it (its retry pays again)."""
        for product, cost in costs.items():
            bucket = self._buckets.get(product)
            if bucket is not None:
                bucket.tokens = min(self.burst, bucket.tokens + cost)
