"""Per-product token buckets: all or nothing, Retry-After from the shortfall, refill, refund, over-burst (pure)."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.collector.errors import Rejected
from pipeline.collector.ratelimit import RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_request_is_admitted_whole_or_refused_whole_with_retry_after():
    clock = Clock()
    limits = RateLimits(rate=2.0, burst=10.0, clock=clock)
    limits.admit(Counter({"checkout": 8}))
    with pytest.raises(Rejected) as info:
        limits.admit(Counter({"search": 5, "checkout": 7}))  # checkout lacks 5 tokens: 3 s at 2/s
    assert info.value.status == 429 and info.value.headers == {"Retry-After": "3"}
    assert "'checkout'" in info.value.error
    limits.admit(Counter({"search": 10}))  # the refused request charged search nothing
    clock.now += 2.5  # +5 tokens
    limits.admit(Counter({"checkout": 7}))
    with pytest.raises(Rejected):
        limits.admit(Counter({"checkout": 1}))


def test_refund_and_over_burst():
    clock = Clock()
    limits = RateLimits(rate=1.0, burst=4.0, clock=clock)
    limits.admit(Counter({"checkout": 4}))
    limits.refund(Counter({"checkout": 4}))  # Kafka did not take them
    limits.admit(Counter({"checkout": 4}))
    with pytest.raises(Rejected) as info:
        limits.admit(Counter({"checkout": 5}))
    assert info.value.status == 413  # waiting could never admit it
