"""Always-valid tests for the release judge: evidence that may be looked at every evaluation, and bounds.

The judge looks at a release at every evaluation interval, so a fixed-sample
p-value (checked against 0.01 at each of hundreds of looks) would page on noise
sooner or later. These tests are **mixture sequential probability ratio tests**
(mSPRT): the likelihood ratio of the data under an alternative against the
null, averaged over a prior on the effect. Under the null that average is a
nonnegative (super)martingale with mean 1, so by Ville's inequality the chance
that it *ever* reaches ``1/alpha`` - at any look, however often we look - is at
most ``alpha`` (Robbins 1970; Johari, Koomen, Pekelis & Walsh, "Always Valid
Inference: Continuous Monitoring of A/B Tests", Operations Research 2022).
``1/evidence`` is the always-valid p-value.

**Rates (crash rate, error rate): a conditional test on counts.** Crashes on
the new version and on its baseline are counts ``x1`` and ``x0`` over exposures
``n1`` and ``n0`` (ended sessions, or requests). Given both exposures, each
crash came from the new version with probability
``pi(rho) = s*rho / (s*rho + 1 - s)`` with ``s = n1 / (n1 + n0)`` and ``rho`` the
rate ratio - the multinomial view of two Poisson streams in Lindon & Malek,
"Anytime-Valid Inference for Multinomial Count Data" (NeurIPS 2022). It is
exact for small counts (no normal approximation: a canary with three crashes is
judged on three crashes) and needs no minimum volume: thin data simply cannot
reach the evidence bar. The prior is a half-normal on ``log(rho / rho0)``
(scale ``TAU``), so ``evidence(rho0)`` tests "the ratio is at most rho0" against
"it is larger"; inverting it gives a lower confidence bound on the ratio that
is valid at every look (a confidence sequence).

**Tail shares (latency): a one-sample test on a proportion.** "p95 at least
``r`` times the baseline's" is "more than 5% of the new version's requests are
slower than ``r x`` the baseline's p95": ``k`` of ``n`` requests over that line
against the share ``p0``, with a half-normal prior on the log-odds above ``p0``.

Everything here is pure arithmetic on counts (numpy over a fixed grid of the
prior); nothing reads the store.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

TAU = 1.5  # prior scale on the log effect: most mass on ratios x1 .. x20, the range regressions have
_GRID = (np.arange(96) + 0.5) * (4.0 * TAU / 96)  # midpoints of the prior's support above the null, to 4 TAU
_LOG_PRIOR = -0.5 * (_GRID / TAU) ** 2
_LOG_PRIOR -= np.log(np.exp(_LOG_PRIOR).sum())  # normalised weights on the grid


def _log_mix(loglik_ratio: np.ndarray) -> float:
    """log of the prior-weighted mean of the likelihood ratios over the grid (log-sum-exp)."""
    a = loglik_ratio + _LOG_PRIOR
    top = float(a.max())
    return top + math.log(float(np.exp(a - top).sum()))


def _share(s: float, log_rho: np.ndarray | float) -> np.ndarray:
    """pi(rho): the chance an event came from the new version, with exposure share s and rate ratio rho."""
    return 1.0 / (1.0 + (1.0 - s) / s * np.exp(-np.asarray(log_rho, dtype=float)))


Counts = int | float | np.ndarray  # a total, or one per stratum (hour)


def rate_evidence(x1: Counts, n1: Counts, x0: Counts, n0: Counts, rho0: float = 1.0, *, upward: bool = True
                  ) -> float:  # fmt: skip
    """log evidence that the new rate is more than ``rho0`` x the baseline's (``upward``), or less (not ``upward``).

    ``x`` events over ``n`` exposure on each side: totals, or arrays with one
    entry per stratum. **Strata** (the hours of a canary): the conditional
    likelihood is the product over hours, each with its own exposure share, so
    a new version whose share grows into a bad hour for every version (an
    incident during its ramp) is compared with the old versions hour by hour,
    not blamed for when it served - the Mantel-Haenszel idea, in the multinomial
    test. Strata without exposure on both sides or without events carry no
    information. 0 (no evidence) when none is left.
    """
    if rho0 <= 0:
        return 0.0
    x1, n1, x0, n0 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x1, n1, x0, n0))
    keep = (n1 > 0) & (n0 > 0) & (x1 + x0 > 0)
    if not keep.any():
        return 0.0
    x1, n1, x0, n0 = x1[keep, None], n1[keep, None], x0[keep, None], n0[keep, None]
    s = n1 / (n1 + n0)
    base = math.log(rho0)
    grid = base + (_GRID if upward else -_GRID)
    pi, pi0 = _share(s, grid), _share(s, base)
    with np.errstate(divide="ignore"):
        llr = (x1 * (np.log(pi) - np.log(pi0)) + x0 * (np.log1p(-pi) - np.log1p(-pi0))).sum(axis=0)
    return _log_mix(np.nan_to_num(llr, neginf=-1e9))


def tail_evidence(k: int, n: int, p0: float) -> float:
    """log evidence that more than a share ``p0`` of ``n`` observations lie over a line (``k`` of them do)."""
    if n <= 0 or not 0 < p0 < 1:
        return 0.0
    logit0 = math.log(p0 / (1 - p0))
    p = 1.0 / (1.0 + np.exp(-(logit0 + _GRID)))
    llr = k * (np.log(p) - math.log(p0)) + (n - k) * (np.log1p(-p) - math.log1p(-p0))
    return _log_mix(llr)


def p_value(log_evidence: float) -> float:
    """The always-valid p-value of one look: min(1, 1 / evidence)."""
    return min(1.0, math.exp(-log_evidence))


def ratio_bounds(x1: Counts, n1: Counts, x0: Counts, n0: Counts, alpha: float) -> tuple[float, float]:
    """A confidence sequence for the rate ratio at level 1 - alpha (each side alpha / 2), valid at every look.

    The lower bound is the largest ``rho0`` that "ratio <= rho0" is rejected
    for (0 when none is), the upper the smallest "ratio >= rho0" is rejected for
    (inf when none is).
    """
    bar = math.log(2.0 / alpha)
    if np.sum(n1) <= 0 or np.sum(n0) <= 0 or np.sum(x1) + np.sum(x0) <= 0:
        return 0.0, math.inf
    lower = _boundary(lambda r: rate_evidence(x1, n1, x0, n0, r, upward=True) >= bar, rising=True)
    upper = _boundary(lambda r: rate_evidence(x1, n1, x0, n0, r, upward=False) >= bar, rising=False)
    return lower, upper


def _boundary(rejects: Callable[[float], bool], *, rising: bool) -> float:
    """Bisection in log space for where ``rejects(rho0)`` stops holding (monotone in rho0)."""
    test = rejects
    lo, hi = math.log(1e-3), math.log(1e4)
    if rising:  # rejects small rho0, not large ones
        if not test(math.exp(lo)):
            return 0.0
        if test(math.exp(hi)):
            return math.inf
    else:  # rejects large rho0, not small ones
        if not test(math.exp(hi)):
            return math.inf
        if test(math.exp(lo)):
            return 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if test(math.exp(mid)) == rising:
            lo = mid
        else:
            hi = mid
    return math.exp(lo if rising else hi)
