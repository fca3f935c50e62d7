"""Hand-written traffic for pure release-judge tests: two versions' sessions and crashes per hour, no requests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from alerts.traffic import Counts, ProductTraffic


def two_versions(old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray]) -> ProductTraffic:
    """Product "p" from 2026-01-01: version 1.0's and 2.0's (sessions, crashed) per hour, and their sum."""
    hours = len(old[0])
    zeros = np.zeros(hours, dtype=np.int64)

    def counts(s: np.ndarray, c: np.ndarray) -> Counts:
        return Counts.of({"sessions": s, "crashed": c, "requests": zeros, "failed": zeros},
                         np.zeros((hours, 4), dtype=np.int64))  # fmt: skip

    versions = {"1.0": counts(*old), "2.0": counts(*new)}
    return ProductTraffic("p", datetime(2026, 1, 1, tzinfo=UTC), hours, 0, versions,
                          counts(old[0] + new[0], old[1] + new[1]))  # fmt: skip
