"""Run the judge over scenarios at every look and count what it got right.

Looks are hourly for the first ``dense_h`` hours after each arrival (where
detection delays are decided), then every ``sparse_h`` hours to the end of the
lookback. A release *pages* at the first look at which any signal is severe,
and is *ticketed* at the first look at which it pages or its crash or error
rate is a (non-severe) regression - the shipped ``ReleaseWorse`` ticket; each
delay is counted in event time from its release. The **least delay** next
to it is what the same test reaches on the expected counts (no noise): the
floor that the volume, the effect and the false-alarm rate put on any delay.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alerts.harness.scenario import Product, Scenario, Truth, library
from alerts.harness.simulate import Arriving, arriving, peak_hour, simulate
from alerts.regression import RATES, RegressionConfig, choose_sides, judge_sides
from alerts.traffic import Arrival, ProductTraffic, arrivals

DENSE_H, SPARSE_H = 72, 6


@dataclass
class Outcome:
    """One release of one product under one seed."""

    scenario: str
    product: str
    version: str
    seed: int
    truth: Truth
    users_per_day: float
    effect: str
    staged: bool
    announced: bool
    judged: bool  # an arrival was found for it
    paged_after_h: float | None  # event-time delay of the first page
    least_h: float | None = None  # the same test on expected counts
    comparisons: set[str] = field(default_factory=set)
    ticketed_after_h: float | None = None  # event-time delay of the first page or ReleaseWorse ticket


def looks(arrival_h: int, hours: int, cfg: RegressionConfig) -> Iterable[int]:
    end = min(hours, arrival_h + cfg.lookback_s // 3600)
    dense = range(arrival_h + 1, min(end, arrival_h + DENSE_H) + 1)
    sparse = range(arrival_h + DENSE_H + SPARSE_H, end + 1, SPARSE_H)
    return [*dense, *sparse]


@dataclass
class Looks:
    """What the looks at one release found: the first that paged, the first that ticketed, the comparisons."""

    paged: int | None = None
    ticketed: int | None = None
    comparisons: set[str] = field(default_factory=set)


def first_page(traffic: ProductTraffic | Arriving, arrival: Arrival, cfg: RegressionConfig) -> Looks:
    """The first look that pages (and the first that tickets); each look sees the events that had arrived by then."""
    found = Looks()
    view = traffic.as_of if isinstance(traffic, Arriving) else (lambda t: traffic)
    hours = traffic.final.hours if isinstance(traffic, Arriving) else traffic.hours
    for t in looks(arrival.hour, hours, cfg):
        at_t = view(t)
        sides = choose_sides(at_t, arrival, t, cfg)
        found.comparisons.add(sides.comparison)
        results = judge_sides(sides, at_t.bucket0, cfg)
        severe = [r for r in results.values() if r["severe"]]
        worse = any(results[s]["verdict"] == "regression" for s in RATES if s in results)
        if found.ticketed is None and (severe or worse):
            found.ticketed = t
        if severe:
            found.paged = t
            found.comparisons |= {r.get("comparison", sides.comparison) for r in severe}
            return found
    return found


def expected(scenario: Scenario, product: Product, peak: float, seeds: int = 8) -> ProductTraffic:
    """The mean of several simulations with their traffic peaking at ``peak`` (cumulative counts): close to
    the expected counts, for the least delay."""
    runs = [simulate(scenario, product, 10_000 + s, peak) for s in range(seeds)]
    base = runs[0]
    for name in ("total", *[f"v:{v}" for v in base.versions]):
        counts = [r.total if name == "total" else r.versions[name[2:]] for r in runs]
        target = base.total if name == "total" else base.versions[name[2:]]
        for f in ("sessions", "crashed", "requests", "failed", "latency"):
            # means, not rounded: an hour's bucket of a small product holds a fraction of a request
            setattr(target, f, np.mean([getattr(c, f) for c in counts], axis=0))
    return base


def run_product(scenario: Scenario, product: Product, seed: int, cfg: RegressionConfig,
                least: bool = False) -> list[Outcome]:  # fmt: skip
    seen = arriving(scenario, product, seed)
    traffic = seen.final  # arrivals are found on all the events (late ones move a first hour by hours at most)
    found: dict[tuple[str, int], Arrival] = {}
    for a in arrivals(traffic):
        found.setdefault((a.version, a.hour // 24), a)
    mean = expected(scenario, product, peak_hour(product, seed)) if least else None
    out = []
    for i, r in enumerate(product.releases):
        if r.day <= 0:
            continue
        day = int(r.day * 24) // 24
        arrival = next((a for (v, d), a in found.items() if v == r.version and abs(d - day) <= 1), None)
        least_h = None
        looked = Looks()
        if arrival is not None:
            looked = first_page(seen, arrival, cfg)
            if mean is not None:
                m_arrival = next((a for a in arrivals(mean) if a.version == r.version and abs(a.hour // 24 - day) <= 1),
                                 None)  # fmt: skip
                if m_arrival is not None:
                    tm = first_page(mean, m_arrival, cfg).paged
                    least_h = None if tm is None else tm - r.day * 24
        prev = product.releases[i - 1]
        effect = _effect(r.crash / prev.crash, r.errors / prev.errors, r.latency / prev.latency)
        out.append(Outcome(scenario.name, product.name, r.version, seed, product.truth(i), product.users_per_day,
                           effect, len(r.rollout) > 1 or r.rollout[0][1] < 100, r.announced, arrival is not None,
                           _after(looked.paged, r.day), least_h, looked.comparisons,
                           _after(looked.ticketed, r.day)))  # fmt: skip
    return out


def _after(look: int | None, day: float) -> float | None:
    return None if look is None else look - day * 24


def _effect(crash: float, errors: float, latency: float) -> str:
    parts = [f"{n} x{v:g}" for n, v in (("crash", crash), ("errors", errors), ("p95", latency)) if v != 1]
    return ", ".join(parts) or "A/A"


def run(folder: Path, seeds: Iterable[int], cfg: RegressionConfig | None = None, *, least: bool = False,
        progress: Callable[[str], None] | None = None) -> list[Outcome]:  # fmt: skip
    cfg = cfg or RegressionConfig()
    out: list[Outcome] = []
    for path, scenario in library(folder):
        for seed in seeds:
            for product in scenario.products:
                out.extend(run_product(scenario, product, seed, cfg, least=least))
            if progress:
                progress(f"{path.name} seed {seed}")
    return out


def summary(outcomes: list[Outcome], scenarios_days: float | None = None) -> dict[str, Any]:
    """The confusion table's figures."""
    severe = [o for o in outcomes if o.truth == "severe"]
    healthy = [o for o in outcomes if o.truth == "healthy"]
    aa = [o for o in healthy if o.effect == "A/A"]
    detected = [o for o in severe if o.paged_after_h is not None]
    products = {(o.scenario, o.product, o.seed) for o in outcomes}
    bad_products = {(o.scenario, o.product, o.seed) for o in severe}
    false_pages = [o for o in healthy if o.paged_after_h is not None]
    healthy_paged = {(o.scenario, o.product, o.seed) for o in false_pages} - bad_products
    return {
        "releases": len(outcomes),
        "severe": len(severe),
        "severe_paged": len(detected),
        "severe_unjudged": sum(not o.judged for o in severe),
        "median_delay_h": float(np.median([o.paged_after_h for o in detected])) if detected else math.nan,
        "aa_releases": len(aa),
        "aa_paged": sum(o.paged_after_h is not None for o in aa),
        "aa_page_rate": (sum(o.paged_after_h is not None for o in aa) / len(aa)) if aa else math.nan,
        "aa_unjudged": sum(not o.judged for o in aa),
        "aa_ticketed": sum(o.ticketed_after_h is not None for o in aa),
        "aa_ticket_rate": (sum(o.ticketed_after_h is not None for o in aa) / len(aa)) if aa else math.nan,
        "severe_ticketed": sum(o.ticketed_after_h is not None for o in severe),
        "healthy_products": len(products - bad_products),
        "healthy_products_paged": len(healthy_paged),
        "false_pages": len(false_pages),
        "false_pages_per_product_month": (len(false_pages) / (len(products) * (scenarios_days or 28) / 30))
        if products else math.nan,
    }  # fmt: skip


def delay_table(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """Severe releases by effect and volume: seeds paged, median and worst delay, least delay."""
    groups: dict[tuple[str, str, str, float, bool], list[Outcome]] = {}
    for o in outcomes:
        if o.truth == "severe":
            family = re.sub(r"-\d+-\d+$", "", o.product)  # a grid's products by their template
            groups.setdefault((o.scenario, family, o.effect, o.users_per_day, o.staged), []).append(o)
    rows = []
    for (scenario, family, effect, users, staged), os_ in sorted(groups.items()):
        delays = [o.paged_after_h for o in os_ if o.paged_after_h is not None]
        least = [o.least_h for o in os_ if o.least_h is not None]
        tickets = [o.ticketed_after_h for o in os_ if o.ticketed_after_h is not None]
        rows.append({
            "scenario": scenario, "product": family, "effect": effect, "users_per_day": users, "staged": staged,
            "paged": f"{len(delays)}/{len(os_)}",
            "median_h": round(float(np.median(delays)), 1) if delays else None,
            "max_h": round(max(delays), 1) if delays else None,
            "least_h": round(float(np.median(least)), 1) if least else None,
            "ticketed": f"{len(tickets)}/{len(os_)}",
            "ticket_median_h": round(float(np.median(tickets)), 1) if tickets else None,
        })  # fmt: skip
    return rows
