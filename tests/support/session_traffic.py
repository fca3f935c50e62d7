"""Hand-written traffic for pure release-judge tests: two versions' sessions and crashes per hour, requests optional."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from alerts.traffic import Counts, ProductTraffic


def two_versions(old: tuple[np.ndarray, ...], new: tuple[np.ndarray, ...]) -> ProductTraffic:
    """Product "p" from 2026-01-01: version 1.0's and 2.0's (sessions, crashed[, requests, failed]) per hour,
    and their sum; no requests unless given."""
    hours = len(old[0])
    zeros = np.zeros(hours, dtype=np.int64)

    def counts(s: np.ndarray, c: np.ndarray, r: np.ndarray = zeros, f: np.ndarray = zeros) -> Counts:
        return Counts.of({"sessions": s, "crashed": c, "requests": r, "failed": f},
                         np.zeros((hours, 4), dtype=np.int64))  # fmt: skip

    both = [a + b for a, b in zip(old, new, strict=True)]
    return ProductTraffic("p", datetime(2026, 1, 1, tzinfo=UTC), hours, 0,
                          {"1.0": counts(*old), "2.0": counts(*new)}, counts(*both))  # fmt: skip
