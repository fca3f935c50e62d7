"""The judge and the redesign flag on four weeks of traffic from a generator that shares no code with them.

``pulse eval`` and the scorecard sweep read simulators written for them (hourly
and daily counts), and ``pipeline.tools.synth`` is the demo's. This trial writes
events the way a new user's services would - single users' sessions, requests,
feature uses, feedback and tickets, each user moving to a new version some
hours after it ships (an exponential lag, mean 8 h) - and none of it is
imported from ``alerts.harness`` or ``synth``. Eight products, each with a
truth (``PRODUCTS``): a 25% staged rollout with crash x20, a first announced
release with crash x12 and its hotfix, an unannounced version with crash x5,
a slow decay over the four weeks (users -45%, NPS +8 to -69, tickets x2, task
success -12 points), a latency creep to x12 with no release, a product whose
p95 is over the SLO all along, A/A releases at 20 and 50 users a day. Weekly
seasonality and a holiday at 60% on day 17; every product peaks at its own hour.

The events go through the worker's own write path into a chDB store
(``support.scenario_store.write_events``); then the shipped rules are replayed
over the four weeks (``alerts.backtest``, as ``pulse alerts backtest`` does)
and each alert's first firing is printed against the truth::

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python tests/decisions/independent_trial.py \\
        --seed 1 --end 2026-12-07T07:00:00Z --scale 1

About 800k events at ``--scale 1``; building the store takes a minute, the
backtest (every hour of the four weeks) five to ten.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from pipeline.events import (
    Conversion,
    Event,
    FeatureUsed,
    Feedback,
    Release,
    Request,
    SessionEnded,
    SessionStarted,
    SupportTicket,
)

DAYS = 28
HOLIDAY, HOLIDAY_LEVEL = 17, 0.6
LAG_MEAN_H = 8.0  # a user moves to a new version this long after it ships, on average


@dataclass(frozen=True)
class Version:
    name: str
    day: float  # when it starts to serve (days after the data's start)
    pct: float = 100.0  # share of users it serves (by a hash of the user)
    announced: bool = True
    crash_x: float = 1.0


@dataclass
class Product:
    name: str
    users: int  # a day
    peak_h: float  # the hour of the UTC day its users peak at
    versions: list[Version]
    truth: str
    lat_ms: float = 180.0  # median request latency (lognormal, sigma 0.6: p95 = 2.7 x median)
    creep: float = 1.0  # latency multiplier reached at the end, linearly
    decay: float = 0.0  # 1: the slow decay in full by the end
    weekend: float = 1.0
    requests: float = 4.0  # per session
    bad: set[str] = field(default_factory=set)  # "page:<version>", "ticket", "redesign": what must fire


PRODUCTS = [
    Product("atlas", 400, 20, [Version("1.0", 0, announced=False), Version("1.1", 9.3),
                               Version("1.2", 19.6, pct=25, crash_x=20)],
            "1.1 A/A; 1.2 a 25% staged rollout, crash x20", bad={"page:1.2"}),
    Product("birch", 200, 9, [Version("3.0", 0, announced=False), Version("3.1", 14.2, crash_x=12),
                              Version("3.1.1", 16.2)],
            "3.1 the first announced release, crash x12; 3.1.1 its hotfix", bad={"page:3.1"}),
    Product("cedar", 100, 14, [Version("2.0", 0, announced=False)], "slow decay over the four weeks", decay=1.0,
            bad={"redesign"}),
    Product("dune", 120, 3, [Version("5.0", 0, announced=False)], "healthy; p95 about 1.9 s, over the SLO",
            lat_ms=700, bad={"ticket"}),
    Product("elm", 50, 17, [Version("0.9", 0, announced=False), *(Version(f"1.{i}", d) for i, d in
                            enumerate((6.5, 13.4, 20.2, 26.1)))], "healthy; four A/A releases", weekend=0.5),
    Product("fern", 100, 12, [Version("7.0", 0, announced=False)], "latency creep x12 (p95 0.2 to 2.4 s), no release",
            lat_ms=75, creep=12, requests=3, bad={"ticket"}),
    Product("gale", 20, 22, [Version("1.0", 0, announced=False), Version("1.1", 12)], "healthy; one A/A release"),
    Product("holly", 1500, 15, [Version("4.0", 0, announced=False), Version("4.1", 8.1),
                                Version("4.2", 22.4, announced=False, crash_x=5)],
            "4.1 A/A; 4.2 unannounced, crash x5", bad={"page:4.2"}),
]  # fmt: skip


def events(product: Product, start: datetime, end: datetime, seed: int, scale: float) -> Iterator[Event]:
    """One product's events over ``[start, end)``: users, their sessions and what happens in them."""
    rng = np.random.default_rng([seed, zlib.crc32(product.name.encode())])
    daily = max(5, round(product.users * scale))
    pool = 3 * daily  # the product's users; about a third of them come on a given day
    user_hash, lag_d = rng.random(pool), rng.exponential(LAG_MEAN_H, pool) / 24
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range((end - midnight).days + 1):
        day0 = midnight + timedelta(days=d)
        level = (1 - 0.45 * product.decay * min(1.0, d / DAYS)) * (product.weekend if day0.weekday() >= 5 else 1)
        for u in rng.choice(pool, size=min(pool, rng.poisson(daily * level * (HOLIDAY_LEVEL if d == HOLIDAY else 1))),
                            replace=False):  # fmt: skip
            for _ in range(1 + rng.poisson(0.5)):
                hour = rng.uniform(0, 24) if rng.random() < 0.2 else (product.peak_h + rng.normal(0, 4)) % 24
                t = day0 + timedelta(hours=float(hour))
                if start <= t < end:
                    day = (t - start) / timedelta(days=1)
                    version = _version(product, user_hash[u], lag_d[u], day)
                    yield from _session(product, rng, t, day, end, f"{product.name}-u{u}", version)


def _version(product: Product, user_hash: float, lag_d: float, day: float) -> Version:
    """The newest version serving this user at ``day``: shipped more than the user's lag ago, and covering it."""
    current = product.versions[0]
    for v in product.versions[1:]:
        if day >= v.day + lag_d and user_hash * 100 < v.pct:
            current = v
    return current


def _session(product: Product, rng: np.random.Generator, t: datetime, day: float, end: datetime, user: str,
             version: Version) -> Iterator[Event]:  # fmt: skip
    decay = product.decay * day / DAYS  # 0 .. 1 over the four weeks
    base = {"product": product.name, "version": version.name, "user_id": user, "session_id": uuid.uuid4().hex[:16]}
    yield SessionStarted(ts=t, **base)
    at = t
    for _ in range(rng.poisson(product.requests)):
        at += timedelta(seconds=float(rng.exponential(20)))
        latency = product.lat_ms * (1 + (product.creep - 1) * day / DAYS) * float(rng.lognormal(0, 0.6))
        failed = rng.random() < 0.005
        yield Request(ts=at, operation="GET /items/{id}", latency_ms=min(latency, 3.6e6),
                      status_code=500 if failed else 200, **base)  # fmt: skip
    for _ in range(rng.poisson(1.5)):
        success = bool(rng.random() < 0.9 - 0.12 * decay)
        yield FeatureUsed(ts=t + timedelta(seconds=5), feature="search", success=success, **base)
    if rng.random() < 0.08:
        yield Conversion(ts=t + timedelta(seconds=60), goal="purchase", value=20.0, **base)
    if rng.random() < 0.06:  # NPS +8 falling to -69: promoters minus detractors, passives ~30%
        promoters = max(0.0, (0.7 + (8 - 77 * decay) / 100) / 2)
        r = rng.random()
        score = rng.integers(9, 11) if r < promoters else rng.integers(0, 7) if r < 0.7 else rng.integers(7, 9)
        yield Feedback(ts=t + timedelta(seconds=90), kind="nps", score=int(score), **base)
    if rng.random() < 0.016 * (1 + decay):
        ticket = uuid.uuid4().hex[:12]
        yield SupportTicket(ts=t + timedelta(seconds=120), ticket_id=ticket, action="opened", **base)
        resolved = t + timedelta(hours=float(rng.exponential(10)))
        if resolved < end:
            yield SupportTicket(ts=resolved, ticket_id=ticket, action="resolved", **base)
    duration = float(rng.exponential(300_000))
    if t + timedelta(milliseconds=duration) < end:
        crashed = rng.random() < 0.01 * version.crash_x
        yield SessionEnded(ts=t + timedelta(milliseconds=duration), status="crashed" if crashed else "ok",
                           duration_ms=duration, **base)  # fmt: skip


def releases(start: datetime) -> list[Release]:
    return [Release(product=p.name, version=v.name, released_at=start + timedelta(days=v.day), rollout_pct=v.pct)
            for p in PRODUCTS for v in p.versions if v.announced]  # fmt: skip


def build(data_dir: Path, start: datetime, end: datetime, seed: int, scale: float) -> int:
    """Fill a store under ``data_dir`` through the worker's write path; returns the events written."""
    from support.scenario_store import write_events

    from pipeline import clickhouse
    from pipeline.settings import Settings
    from pipeline.usecases import schema

    settings = Settings(data_dir=data_dir)
    client = clickhouse.connect(settings)
    schema.migrate(client, settings)
    db = settings.clickhouse_database
    everything = sorted((e for p in PRODUCTS for e in events(p, start, end, seed, scale)), key=lambda e: e.ts)
    n = write_events(client, db, everything)
    client.insert(f"{db}.releases", [[r.product, r.version, r.released_at, r.channel, r.rollout_pct, r.commit]
                                     for r in releases(start)],
                  column_names=["product", "version", "released_at", "channel", "rollout_pct", "commit"])  # fmt: skip
    client.close()
    clickhouse.release(settings)
    return n


Firings = dict[tuple[str, str, str], tuple[datetime, str]]


def first_firings(data_dir: Path, start: datetime, end: datetime) -> Firings:
    """(alert, product, version or "") -> its first firing and severity, replaying the shipped rules hourly."""
    from alerts.backtest import backtest
    from pipeline import clickhouse
    from pipeline.settings import Settings

    settings = Settings(data_dir=data_dir)
    client = clickhouse.connect(settings)

    def progress(done: int, total: int) -> None:
        if done % 24 == 0 or done == total:
            print(f"  backtest: {done}/{total} hours", file=sys.stderr, flush=True)

    try:
        transitions = backtest(client, settings.clickhouse_database, None, start, end, timedelta(hours=1),
                               progress=progress)  # fmt: skip
    finally:
        client.close()
        clickhouse.release(settings)
    first: Firings = {}
    for tr in transitions:
        labels = tr["labels"]
        key = (tr["alertname"], labels.get("product", ""), labels.get("version", ""))
        if tr["state"] == "firing" and key not in first:
            first[key] = datetime.fromisoformat(tr["at"]), labels.get("severity", "")
    return first


def report(first: Firings, start: datetime, scale: float) -> list[str]:
    """Each product's truth and what fired, with delays; the lines that break the truth start with WRONG.

    Wrong: a release page for a version that is not bad, any page for a product with nothing bad, a redesign
    flag for a product that does not decay, and a truth that raised nothing."""
    lines = []
    for p in PRODUCTS:
        fired = {k: v for k, v in first.items() if k[1] == p.name}
        lines.append(f"{p.name} ({max(5, round(p.users * scale))} users a day): {p.truth}")
        for (alert, _, version), (t, severity) in sorted(fired.items(), key=lambda kv: kv[1]):
            shipped = {v.name: v.day for v in p.versions}.get(version)
            after = f", {(t - start - timedelta(days=shipped)) / timedelta(hours=1):.1f} h after it shipped" if (
                shipped is not None) else ""  # fmt: skip
            wrong = ((alert == "ReleaseRegression" and f"page:{version}" not in p.bad)
                     or (severity == "page" and not p.bad)
                     or (alert == "RedesignCandidate" and "redesign" not in p.bad))  # fmt: skip
            lines.append(f"  {'WRONG ' if wrong else ''}{alert} ({severity}) {version} at {t:%m-%d %H:%M} UTC{after}")
        for need in sorted(p.bad):
            kind, _, version = need.partition(":")
            needed = {"page": "ReleaseRegression", "redesign": "RedesignCandidate"}.get(kind)
            if needed and (needed, p.name, version) not in first:
                lines.append(f"  WRONG: no {needed} {version}")
            if kind == "ticket" and not any(a.startswith("Latency") for a, _, _ in fired):
                lines.append("  WRONG: no latency alert")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--seed", type=int, default=1, help="the generator's random numbers (default 1)")
    ap.add_argument("--end", type=datetime.fromisoformat, default=datetime.fromisoformat("2026-12-07T07:00:00Z"),
                    help="the end of the data (ISO with timezone; any hour of the day)")  # fmt: skip
    ap.add_argument("--scale", type=float, default=1.0, help="users a day x this (0.5: atlas 200, holly 750, ...)")
    ap.add_argument("--data-dir", type=Path, help="where to build the store (default: a new temporary folder, kept)")
    args = ap.parse_args(argv)
    if args.end.tzinfo is None:
        ap.error("--end needs a timezone, e.g. 2026-12-07T07:00:00Z")
    start = args.end - timedelta(days=DAYS)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="pulse-trial-"))
    print(f"building {data_dir} (seed {args.seed}, scale {args.scale}, {start:%Y-%m-%d %H:%M} to "
          f"{args.end:%Y-%m-%d %H:%M} UTC)", file=sys.stderr, flush=True)  # fmt: skip
    n = build(data_dir, start, args.end, args.seed, args.scale)
    print(f"  {n} events stored", file=sys.stderr, flush=True)
    lines = report(first_firings(data_dir, start, args.end), start, args.scale)
    print("\n".join(lines))
    return 1 if any("WRONG" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
