"""Release regression: each new version against its predecessor over equal bake time, with the numbers.

For every release of a product announced within ``lookback`` before ``now``
(and not after it), and the release before it of the same product:

* **Equal bake time, before and after.** The new version has baked
  ``bake = min(now - released_at, max_bake)``. It is measured over
  ``[released_at, released_at + bake)`` and the previous version over the same
  duration just before the release, ``[released_at - bake, released_at)``:
  equal durations, adjacent in time, the same users, and for a bake of whole
  days the same hours of the day. Why not the other two choices: "the same
  duration after each one's release" compares with weeks-old traffic (another
  season, often past retention); "concurrent traffic of both versions" leaves
  as baseline only the users who update last - a biased group that shrinks to
  nothing once the rollout completes (within 48 h in the synthetic scenario),
  so the crash-rate test never gets the volume it needs.
* **Tests.** Crash rate (crashed / ended sessions) and error rate (failed /
  all requests) with a pooled two-proportion z-test (two-sided); latency with
  ClickHouse's ``mannWhitneyUTest`` over raw request latencies from ``events``
  (at most ``latency_sample`` per version, a deterministic hash sample), its
  size shown as the p95 of each version (catalog histogram).
* **Verdict per signal.** ``insufficient_data`` below the minimum volume
  (sessions for crash rate, requests for error rate and latency, on either
  side); ``regression`` / ``improvement`` when p < ``alpha`` and the change is
  at least the effect floor (``min_effect``, relative); else ``no_change``.
  **Severe** (what pages) = a regression with p < ``severe_alpha`` that is also
  large: a rate at least ``severe_rate_ratio`` x its baseline and
  ``severe_rate_abs`` higher in absolute terms, or a p95 latency at least
  ``severe_latency_ratio`` x. An improvement never pages.

Only data with event time before ``now`` is read; a release after ``now`` does
not exist yet. Cost per release under evaluation: one or two catalog queries
and one bounded latency query.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from alerts.sample import Sample
from pipeline import catalog

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

VerdictName = Literal["regression", "improvement", "no_change", "insufficient_data"]
SIGNALS: tuple[str, ...] = ("crash_rate", "error_rate", "latency")
_COLUMNS = [
    "at", "product", "version", "baseline_version", "released_at", "bake_s", "signal", "candidate_value",
    "baseline_value", "test", "p_value", "verdict", "severe", "evidence",
]  # fmt: skip
_METRICS = ["sessions", "crash_rate", "requests", "error_rate", "latency_p95_ms"]


class RegressionConfig(BaseModel):
    """Thresholds of the release judge (defaults are the shipped policy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_s: int = Field(7 * 86_400, gt=0)  # releases announced this long before now are judged
    max_bake_s: int = Field(72 * 3_600, gt=0)  # after three days the verdict stops moving
    alpha: float = Field(0.01, gt=0, lt=1)
    severe_alpha: float = Field(0.001, gt=0, lt=1)
    min_sessions: int = Field(200, ge=1)  # per version, for the crash rate
    min_requests: int = Field(200, ge=1)  # per version, for error rate and latency
    min_effect: float = Field(0.10, ge=0)  # relative change below which a significant difference is no_change
    severe_rate_ratio: float = Field(2.0, ge=1)
    severe_rate_abs: float = Field(0.005, ge=0)  # 0.5 percentage points
    severe_latency_ratio: float = Field(1.5, ge=1)
    latency_sample: int = Field(10_000, ge=10)


# ---------------------------------------------------------------------------------------------- pure statistics


def two_proportion_z(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of x1/n1 against x0/n0: (z, two-sided p). (0, 1) when undefined."""
    if n1 <= 0 or n0 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:  # no events (or all events) on both sides: no evidence of a difference
        return 0.0, 1.0
    z = (x1 / n1 - x0 / n0) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def ratio(candidate: float, baseline: float) -> float:
    """candidate / baseline; inf for a rise from zero, 1 for zero against zero, NaN when unknown."""
    if not (math.isfinite(candidate) and math.isfinite(baseline)):
        return math.nan
    if baseline == 0:
        return 1.0 if candidate == 0 else math.inf
    return candidate / baseline


def judge(
    cfg: RegressionConfig, *, kind: Literal["rate", "latency"], candidate: float, baseline: float, p_value: float
) -> tuple[VerdictName, bool]:
    """The verdict and the severe flag for one signal whose volumes were sufficient."""
    r = ratio(candidate, baseline)
    if not math.isfinite(p_value) or math.isnan(r) or p_value >= cfg.alpha:
        return "no_change", False
    if r >= 1 + cfg.min_effect:
        if kind == "rate":
            large = r >= cfg.severe_rate_ratio and candidate - baseline >= cfg.severe_rate_abs
        else:
            large = r >= cfg.severe_latency_ratio
        return "regression", large and p_value < cfg.severe_alpha
    if r <= 1 / (1 + cfg.min_effect):
        return "improvement", False
    return "no_change", False


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Verdict:
    """One release x signal: both values, the test, its p-value and the verdict (a ``release_verdicts`` row)."""

    product: str
    version: str
    baseline_version: str
    released_at: datetime
    bake_s: int
    signal: str
    candidate_value: float
    baseline_value: float
    candidate_volume: int
    baseline_volume: int
    test: str
    p_value: float
    verdict: VerdictName
    severe: bool
    baseline_window: str  # ISO interval of the previous version's traffic: the bake just before the release

    def evidence(self) -> dict[str, Any]:
        return {
            "candidate_volume": self.candidate_volume,
            "baseline_volume": self.baseline_volume,
            "baseline_window": self.baseline_window,
            "ratio": _none_if_not_finite(ratio(self.candidate_value, self.baseline_value)),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "version": self.version,
            "baseline_version": self.baseline_version,
            "released_at": self.released_at.isoformat(),
            "bake_s": self.bake_s,
            "signal": self.signal,
            "candidate_value": _none_if_not_finite(self.candidate_value),
            "baseline_value": _none_if_not_finite(self.baseline_value),
            "test": self.test,
            "p_value": _none_if_not_finite(self.p_value),
            "verdict": self.verdict,
            "severe": self.severe,
            **self.evidence(),
        }


def _none_if_not_finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN/inf


# ---------------------------------------------------------------------------------------------- reading the store


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def released_versions(client: Client, database: str, now: datetime) -> dict[str, list[tuple[str, datetime]]]:
    """Each product's releases out by ``now``, oldest first: (version, released_at in UTC)."""
    rows = client.query(
        f"SELECT product, version, released_at FROM {database}.releases FINAL "
        "WHERE released_at <= {now:DateTime64(3)} ORDER BY product, released_at, version",
        parameters={"now": now},
    ).result_rows
    out: dict[str, list[tuple[str, datetime]]] = {}
    for product, version, released_at in rows:
        out.setdefault(product, []).append((version, _aware(released_at)))
    return out


@dataclass(frozen=True)
class _Side:
    sessions: int
    crashed: int
    requests: int
    failed: int
    p95_ms: float


_EMPTY = _Side(0, 0, 0, 0, math.nan)


def _sides(
    client: Client, database: str, product: str, since: datetime, until: datetime, version: str | None = None
) -> dict[str, _Side]:
    """Per version: session and request counts (exact, from the catalog's rates) and p95 latency."""
    _, rows = catalog.query(
        client, database, _METRICS, since, until=until, product=product, version=version, by=("product", "version")
    )
    out = {}
    for _, ver, sessions, crash_rate, requests, error_rate, p95 in rows:
        n, m = _count(sessions), _count(requests)
        out[ver] = _Side(n, _count(crash_rate * n), m, _count(error_rate * m), float(p95))
    return out


def _count(x: float) -> int:
    return int(round(x)) if math.isfinite(x) else 0


def _mann_whitney(
    client: Client, database: str, product: str, cand: tuple[str, datetime, datetime],
    base: tuple[str, datetime, datetime], limit: int,
) -> float:  # fmt: skip
    """Two-sided Mann-Whitney U p-value of the candidate's request latencies against the baseline's."""
    side = (
        "(SELECT latency_ms AS lat, {idx} AS idx FROM " + database + ".events FINAL WHERE product = {{product:String}} "
        "AND type = 'request' AND version = {{v{idx}:String}} AND ts >= {{s{idx}:DateTime64(3)}} "
        "AND ts < {{u{idx}:DateTime64(3)}} ORDER BY cityHash64(event_id) LIMIT {limit})"
    )
    sql = (
        "SELECT mannWhitneyUTest('two-sided')(lat, idx).2 FROM ("
        + side.format(idx=0, limit=int(limit)) + " UNION ALL " + side.format(idx=1, limit=int(limit)) + ")"
    )  # fmt: skip
    params = {"product": product, "v0": base[0], "s0": base[1], "u0": base[2], "v1": cand[0], "s1": cand[1],
              "u1": cand[2]}  # fmt: skip
    return float(client.query(sql, parameters=params).result_rows[0][0])


# ---------------------------------------------------------------------------------------------- the judge


def release_verdicts(
    client: Client, database: str, now: datetime, *, config: RegressionConfig | None = None
) -> list[Verdict]:
    """Verdicts for every release within the lookback before ``now`` against its predecessor, per signal."""
    cfg = config or RegressionConfig()
    now = _aware(now)
    out: list[Verdict] = []
    for product, releases in sorted(released_versions(client, database, now).items()):
        for (prev_version, _), (version, released_at) in zip(releases, releases[1:], strict=False):
            if released_at < now - timedelta(seconds=cfg.lookback_s) or version == prev_version:
                continue
            out.extend(_judge_release(client, database, cfg, product, version, prev_version, released_at, now))
    return out


def _judge_release(
    client: Client, database: str, cfg: RegressionConfig, product: str, version: str, baseline_version: str,
    released_at: datetime, now: datetime,
) -> list[Verdict]:  # fmt: skip
    bake = min(now - released_at, timedelta(seconds=cfg.max_bake_s))
    end = released_at + bake
    cand = base = _EMPTY
    if bake > timedelta(0):
        cand = _sides(client, database, product, released_at, end, version).get(version, _EMPTY)
        base = _sides(client, database, product, released_at - bake, released_at, baseline_version).get(
            baseline_version, _EMPTY
        )
    where = f"{(released_at - bake).isoformat()}/{released_at.isoformat()}"

    def verdict(signal: str, cv: float, bv: float, cn: int, bn: int, test: str, p: float,
                name: VerdictName, severe: bool) -> Verdict:  # fmt: skip
        return Verdict(product, version, baseline_version, released_at, int(bake.total_seconds()), signal, cv, bv,
                       cn, bn, test, p, name, severe, where)  # fmt: skip

    verdicts = []
    for signal, (x1, n1, x0, n0, minimum) in {
        "crash_rate": (cand.crashed, cand.sessions, base.crashed, base.sessions, cfg.min_sessions),
        "error_rate": (cand.failed, cand.requests, base.failed, base.requests, cfg.min_requests),
    }.items():
        cv = x1 / n1 if n1 else math.nan
        bv = x0 / n0 if n0 else math.nan
        if n1 < minimum or n0 < minimum:
            verdicts.append(verdict(signal, cv, bv, n1, n0, "two_proportion_z", math.nan, "insufficient_data", False))
            continue
        _, p = two_proportion_z(x1, n1, x0, n0)
        name, severe = judge(cfg, kind="rate", candidate=cv, baseline=bv, p_value=p)
        verdicts.append(verdict(signal, cv, bv, n1, n0, "two_proportion_z", p, name, severe))
    if cand.requests < cfg.min_requests or base.requests < cfg.min_requests:
        verdicts.append(verdict("latency", cand.p95_ms, base.p95_ms, cand.requests, base.requests,
                                "mann_whitney_u", math.nan, "insufficient_data", False))  # fmt: skip
    else:
        p = _mann_whitney(client, database, product, (version, released_at, end),
                          (baseline_version, released_at - bake, released_at), cfg.latency_sample)  # fmt: skip
        name, severe = judge(cfg, kind="latency", candidate=cand.p95_ms, baseline=base.p95_ms, p_value=p)
        verdicts.append(verdict("latency", cand.p95_ms, base.p95_ms, cand.requests, base.requests,
                                "mann_whitney_u", p, name, severe))  # fmt: skip
    for v in verdicts:
        log.info(
            "event=release_verdict product=%s version=%s baseline=%s signal=%s verdict=%s severe=%s p=%.3g bake_s=%d",
            v.product, v.version, v.baseline_version, v.signal, v.verdict, v.severe, v.p_value, v.bake_s,
        )  # fmt: skip
    return verdicts


def store_verdicts(client: Client, database: str, verdicts: Sequence[Verdict], at: datetime) -> None:
    """One insert into ``release_verdicts`` (the newest ``at`` per release and signal wins)."""
    rows = [
        [
            _aware(at), v.product, v.version, v.baseline_version, v.released_at, v.bake_s, v.signal, v.candidate_value,
            v.baseline_value, v.test, v.p_value, v.verdict, int(v.severe), json.dumps(v.evidence(), sort_keys=True),
        ]
        for v in verdicts
    ]  # fmt: skip
    if rows:
        client.insert(f"{database}.release_verdicts", rows, column_names=_COLUMNS)


def regression_samples(
    client: Client, database: str, now: datetime, *, store: bool = False, config: RegressionConfig | None = None
) -> list[Sample]:
    """One sample per (product, version) under evaluation: 1.0 when any signal regressed severely, else 0.0.

    ``volume`` is the new version's ended sessions in the bake window, for the rule's minimum-volume check.
    """
    verdicts = release_verdicts(client, database, now, config=config)
    if store:
        store_verdicts(client, database, verdicts, now)
    return samples(verdicts)


def samples(verdicts: Sequence[Verdict]) -> list[Sample]:
    """Groups per-signal verdicts into one :class:`Sample` per release."""
    groups: dict[tuple[str, str, str], list[Verdict]] = {}
    for v in verdicts:
        groups.setdefault((v.product, v.version, v.baseline_version), []).append(v)
    out = []
    for (product, version, baseline_version), vs in groups.items():
        crash = next((v for v in vs if v.signal == "crash_rate"), None)
        out.append(
            Sample(
                labels={"product": product, "version": version, "baseline_version": baseline_version},
                value=1.0 if any(v.severe for v in vs) else 0.0,
                volume=float(crash.candidate_volume if crash else 0),
                evidence={
                    "released_at": vs[0].released_at.isoformat(),
                    "bake_s": vs[0].bake_s,
                    "baseline_window": vs[0].baseline_window,
                    "severe_signals": [v.signal for v in vs if v.severe],
                    "signals": {
                        v.signal: {
                            k: x
                            for k, x in v.to_json().items()
                            if k not in ("product", "version", "baseline_version", "released_at", "bake_s", "signal")
                        }
                        for v in vs
                    },  # fmt: skip
                },
            )
        )
    return out
