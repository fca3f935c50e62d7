"""Deterministic synthetic product traffic for tests, benchmarks and demos.

:func:`traffic` streams realistic ProductPulse events (sessions with feature use,
requests, errors, conversions, feedback and support tickets) for a handful of
products, and :func:`releases` the release announcements those events refer to.
Event time runs on a compressed clock: weeks of traffic are generated in seconds,
so the pipeline's windows, alerts and scorecards can be exercised end to end.

Guarantees:

* Same :class:`TrafficConfig` => identical events, field for field, including
  ``event_id`` and ``session_id`` (all randomness comes from seeded
  :class:`random.Random` instances, never from the clock or ``uuid4``).
* A run with ``max_events=n`` yields exactly the first ``n`` events of the
  unlimited run (or all of them if the traffic is shorter).
* Events are sorted by ``ts`` and lie in ``[start, start + span)``; each one is a
  valid :data:`pipeline.events.Event`.
* Every event's ``version`` is a release from :func:`releases` of its product
  that was out at the event's time.
* Memory stays bounded: events are produced one hour of event time at a time.

Scenarios (:data:`SCENARIOS`) inject known problems so that detectors can be
tested against a ground truth, which :func:`scenario_story` spells out.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.events import (
    Conversion,
    Error,
    Event,
    FeatureUsed,
    Feedback,
    Release,
    Request,
    SessionEnded,
    SessionStarted,
    SupportTicket,
)

SCENARIOS: dict[str, str] = {
    "steady": "all products healthy and stable: diurnal traffic with baseline crash, latency and satisfaction",
    "regression_and_decay": (
        "the 2nd product ships a mid-span release that crashes ~5x more with ~2x latency; "
        "the 3rd product decays after its first ~20% of the span: users fall to ~40%, NPS drops, tickets per "
        "session triple, feature success falls"
    ),
}

_DAY_S = 86_400.0
_HOUR_S = 3_600.0
_US = 1_000_000

# Sessions per hour follow 1 + A*cos(...): peak/trough = (1 + A) / (1 - A) = 4.
_PEAK_HOUR_UTC = 15.0
_DIURNAL_AMPLITUDE = 0.6
_ADOPTION_S = 48 * _HOUR_S
_PLATFORMS = ("ios", "android", "web")
_PLATFORM_WEIGHTS = (0.4, 0.35, 0.25)

_CRASH_P = 0.015
_ABNORMAL_P = 0.005
_EXITED_SHARE = 0.3
_SERVER_ERROR_P = 0.012
_CLIENT_ERROR_P = 0.03
_HANDLED_ERROR_P = 0.04
_FEEDBACK_P = 0.06
_TICKET_P = 0.012
_TICKET_MEDIAN_RESOLVE_S = 6 * _HOUR_S

_REGRESSION_CRASH_FACTOR = 5.0
_REGRESSION_LATENCY_FACTOR = 2.0
_REGRESSION_SERVER_ERROR_FACTOR = 2.0
# The decay begins after the first 20% of the span (about 3 healthy days of a fortnight): a product is judged
# against its own healthy level, so a story of decline starts from one.
_DECAY_START = 0.2
_DECAY_FINAL_USERS = 0.4
_DECAY_NPS_DROP = 3.0
_DECAY_CSAT_DROP = 1.5
_DECAY_TICKET_GROWTH = 2.0  # tickets per session reach 1 + 2 = 3x by the end of the span
_DECAY_SUCCESS_DROP = 0.15

_SERVER_ERRORS = ((500, "internal server error"), (502, "bad gateway"), (503, "service unavailable"))
_HANDLED_KINDS = {
    "ios": ("URLError", "DecodingError"),
    "android": ("IOException", "JsonParseException"),
    "web": ("TypeError", "NetworkError"),
}
_CRASH_KINDS = {
    "ios": ("EXC_BAD_ACCESS", "SIGABRT"),
    "android": ("NullPointerException", "OutOfMemoryError"),
    "web": ("RangeError", "ChunkLoadError"),
}
_SEVERITIES = ("low", "medium", "high", "critical")
_SEVERITY_WEIGHTS = (40, 40, 15, 5)


@dataclass(frozen=True, kw_only=True)
class TrafficConfig:
    """What to generate. ``start`` must be timezone-aware; it is normalised to UTC."""

    seed: int = 7
    start: datetime
    span: timedelta = timedelta(days=1)
    products: tuple[str, ...] = ("checkout", "search", "profile", "feed", "billing")
    users_per_product: int = 200
    sessions_per_user_per_day: float = 2.0
    scenario: str = "steady"
    max_events: int | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        # Frozen dataclass: normalising in place is the only way to keep one canonical start.
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.span <= timedelta(0):
            raise ValueError("span must be positive")
        if not self.products or len(set(self.products)) != len(self.products):
            raise ValueError("products must be non-empty and unique")
        if self.users_per_product < 1 or self.sessions_per_user_per_day < 0:
            raise ValueError("users_per_product must be >= 1 and sessions_per_user_per_day >= 0")
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r}; known: {sorted(SCENARIOS)}")
        if self.scenario == "regression_and_decay" and len(self.products) < 3:
            raise ValueError("regression_and_decay needs at least 3 products")
        if self.max_events is not None and self.max_events < 0:
            raise ValueError("max_events must be >= 0")


@dataclass(frozen=True, slots=True)
class _Catalog:
    features: tuple[tuple[str, float], ...]  # (feature, success rate)
    operations: tuple[tuple[str, float], ...]  # (operation, median latency ms)
    goals: tuple[tuple[str, float, float], ...]  # (goal, probability per session, median value; 0 = no value)


_CATALOGS: dict[str, _Catalog] = {
    "checkout": _Catalog(
        features=(("add_to_cart", 0.98), ("apply_coupon", 0.88), ("pay", 0.94), ("track_order", 0.97)),
        operations=(
            ("GET /cart", 45.0),
            ("POST /cart/items", 70.0),
            ("POST /checkout", 180.0),
            ("POST /payments", 320.0),
        ),
        goals=(("purchase", 0.15, 45.0),),
    ),
    "search": _Catalog(
        features=(("search", 0.97), ("filter", 0.95), ("autocomplete", 0.96), ("open_result", 0.98)),
        operations=(("GET /search", 120.0), ("GET /search/suggest", 35.0), ("GET /items/{id}", 60.0)),
        goals=(("add_to_cart", 0.10, 0.0), ("purchase", 0.03, 30.0)),
    ),
    "profile": _Catalog(
        features=(("edit_profile", 0.93), ("upload_avatar", 0.86), ("change_password", 0.92), ("notifications", 0.96)),
        operations=(("GET /me", 40.0), ("PATCH /me", 90.0), ("POST /me/avatar", 400.0), ("GET /me/settings", 50.0)),
        goals=(("signup", 0.05, 0.0),),
    ),
    "feed": _Catalog(
        features=(("scroll_feed", 0.98), ("like", 0.98), ("share", 0.93), ("comment", 0.95)),
        operations=(("GET /feed", 150.0), ("GET /feed/next", 110.0), ("POST /posts/{id}/like", 40.0)),
        goals=(("follow", 0.08, 0.0),),
    ),
    "billing": _Catalog(
        features=(("view_invoice", 0.97), ("update_card", 0.87), ("change_plan", 0.91), ("download_pdf", 0.95)),
        operations=(("GET /invoices", 80.0), ("POST /payment-methods", 350.0), ("GET /subscription", 60.0)),
        goals=(("subscribe", 0.04, 20.0), ("upgrade", 0.02, 50.0)),
    ),
}


def _catalog(product: str) -> _Catalog:
    """Known products get a hand-written catalog; any other name gets a plausible generic one."""
    if product in _CATALOGS:
        return _CATALOGS[product]
    return _Catalog(
        features=(("open", 0.98), ("browse", 0.96), ("edit", 0.92), ("settings", 0.95)),
        operations=((f"GET /{product}", 60.0), (f"POST /{product}", 150.0), (f"GET /{product}/{{id}}", 50.0)),
        goals=(("signup", 0.05, 0.0), ("purchase", 0.03, 25.0)),
    )


def _regressing_product(cfg: TrafficConfig) -> str | None:
    return cfg.products[1] if cfg.scenario == "regression_and_decay" else None


def _decaying_product(cfg: TrafficConfig) -> str | None:
    return cfg.products[2] if cfg.scenario == "regression_and_decay" else None


def _next_version(version: tuple[int, int, int], minor: bool) -> tuple[int, int, int]:
    major, mnr, patch = version
    return (major, mnr + 1, 0) if minor else (major, mnr, patch + 1)


def _release_offsets(rng: random.Random, cfg: TrafficConfig, regressing: bool) -> list[float]:
    """Release times in seconds relative to ``start``, oldest first.

    The oldest release is at least 3 days before ``start`` so every user already
    runs a release when traffic begins (adoption takes at most 2 days).
    """
    span_s = cfg.span.total_seconds()
    if regressing:
        # Earlier releases sit well before the span so the previous version is fully adopted
        # and the mid-span comparison is clean.
        before = sorted(-rng.uniform(3, 30) * _DAY_S for _ in range(rng.randint(1, 2)))
        return [*before, span_s / 2]
    inside = sorted(span_s * rng.uniform(0.1, 0.9) for _ in range(rng.randint(0, 2)))
    return [-rng.uniform(3, 30) * _DAY_S, *inside]


def _product_releases(cfg: TrafficConfig, product: str) -> list[Release]:
    # One RNG per product: adding a product never changes the releases of the others.
    rng = random.Random(f"{cfg.seed}/releases/{product}")
    regressing = product == _regressing_product(cfg)
    offsets = _release_offsets(rng, cfg, regressing)
    version = (rng.randint(1, 4), rng.randint(0, 9), 0)
    out: list[Release] = []
    for i, offset in enumerate(offsets):
        if i:
            is_last = i == len(offsets) - 1
            version = _next_version(version, minor=(regressing and is_last) or rng.random() < 0.65)
        out.append(
            Release(
                product=product,
                version=".".join(map(str, version)),
                released_at=cfg.start + timedelta(seconds=offset),
                channel="stable",
                rollout_pct=100.0,
                commit=f"{rng.getrandbits(40):010x}",
            )
        )
    return out


def releases(cfg: TrafficConfig) -> list[Release]:
    """Every product's releases (1-3 each, the oldest before ``start``), sorted by ``released_at``."""
    out = [r for product in cfg.products for r in _product_releases(cfg, product)]
    return sorted(out, key=lambda r: (r.released_at, r.product))


def scenario_story(cfg: TrafficConfig) -> dict[str, str]:
    """The ground truth of the scenario: which release regressed, which product decays. Empty for steady."""
    regressing, decaying = _regressing_product(cfg), _decaying_product(cfg)
    if regressing is None or decaying is None:
        return {}
    *_, previous, bad = _product_releases(cfg, regressing)
    return {
        "regressing_release": f"{regressing} {bad.version}",
        "regressing_product": regressing,
        "regressing_version": bad.version,
        "regression_released_at": bad.released_at.isoformat(),
        "previous_release": f"{regressing} {previous.version}",
        "previous_version": previous.version,
        "decaying_product": decaying,
    }


@dataclass(slots=True)
class _ProductWorld:
    """Everything fixed about one product for a run: catalog, releases and its users."""

    name: str
    catalog: _Catalog
    releases: list[tuple[float, str]]  # (seconds after start, version), oldest first
    platforms: list[str]
    lags: list[float]  # per user: seconds between a release and that user running it
    regress_version: str | None
    decays: bool

    def version_at(self, user: int, t: float) -> str:
        lag = self.lags[user]
        for released, version in reversed(self.releases):
            if released + lag <= t:
                return version
        return self.releases[0][1]

    def decay(self, progress: float) -> float:
        """How far the decay has gone (0 -> 1) at ``progress`` through the span; 0 for a healthy product."""
        return max(0.0, (progress - _DECAY_START) / (1.0 - _DECAY_START)) if self.decays else 0.0

    def active_users(self, progress: float) -> int:
        share = 1.0 - (1.0 - _DECAY_FINAL_USERS) * self.decay(progress)
        return max(1, round(len(self.lags) * share))


def _product_world(cfg: TrafficConfig, product: str) -> _ProductWorld:
    rng = random.Random(f"{cfg.seed}/users/{product}")
    n = cfg.users_per_product
    platforms = rng.choices(_PLATFORMS, weights=_PLATFORM_WEIGHTS, k=n)
    # Squaring a uniform front-loads adoption: half the users update within 12 h, all within 48 h.
    lags = [_ADOPTION_S * rng.random() ** 2 for _ in range(n)]
    rels = _product_releases(cfg, product)
    return _ProductWorld(
        name=product,
        catalog=_catalog(product),
        releases=[((r.released_at - cfg.start).total_seconds(), r.version) for r in rels],
        platforms=platforms,
        lags=lags,
        regress_version=rels[-1].version if product == _regressing_product(cfg) else None,
        decays=product == _decaying_product(cfg),
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        # Knuth's method costs O(lam) draws; the normal approximation is indistinguishable here.
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _diurnal(hour_of_day: float) -> float:
    """Relative session rate at an hour of the UTC day; averages 1 over a day."""
    return 1.0 + _DIURNAL_AMPLITUDE * math.cos(2 * math.pi * (hour_of_day - _PEAK_HOUR_UTC) / 24)


def _slices(cfg: TrafficConfig) -> Iterator[tuple[float, float]]:
    """(from, to) seconds after start, cut at UTC hour boundaries so hourly charts line up."""
    span_s = cfg.span.total_seconds()
    into_hour = cfg.start.minute * 60 + cfg.start.second + cfg.start.microsecond / _US
    edge = _HOUR_S - into_hour if into_hour else _HOUR_S
    lo = 0.0
    while lo < span_s:
        hi = min(edge, span_s)
        yield lo, hi
        lo, edge = hi, edge + _HOUR_S


_EventClass = (
    type[SessionStarted]
    | type[SessionEnded]
    | type[FeatureUsed]
    | type[Request]
    | type[Error]
    | type[Conversion]
    | type[Feedback]
    | type[SupportTicket]
)


def _span_us(cfg: TrafficConfig) -> int:
    return cfg.span // timedelta(microseconds=1)


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


class _Writer:
    """Builds one session's events; drops those past the end of the span."""

    __slots__ = ("rng", "start", "span_us", "env", "out")

    def __init__(self, rng: random.Random, start: datetime, span_us: int, env: dict[str, str]) -> None:
        self.rng = rng
        self.start = start
        self.span_us = span_us
        self.env = env
        self.out: list[tuple[int, Event]] = []

    def emit(self, t: float, model: _EventClass, env: dict[str, str] | None = None, **fields: Any) -> None:
        # Whole microseconds, floored, so the ts stored on the event is exactly the sort key.
        us = int(t * _US)
        if us >= self.span_us:
            return
        fields["event_id"] = _uuid(self.rng)
        fields["ts"] = self.start + timedelta(0, 0, us)
        fields.update(env or self.env)
        # model_validate is the validation Model(**fields) runs, minus re-packing the keyword arguments.
        self.out.append((us, model.model_validate(fields)))


@dataclass(frozen=True, slots=True)
class _SessionPlan:
    """The per-session facts every event generator needs."""

    world: _ProductWorld
    user: int
    t0: float
    duration: float
    regressing: bool
    decay: float  # 0 for healthy products, else how far the decay has gone (0 -> 1)
    status: str

    def moment(self, rng: random.Random) -> float:
        return self.t0 + rng.uniform(0.001, self.duration - 0.001)


def _session_status(rng: random.Random, regressing: bool) -> str:
    crash_p = _CRASH_P * (_REGRESSION_CRASH_FACTOR if regressing else 1.0)
    r = rng.random()
    if r < crash_p:
        return "crashed"
    if r < crash_p + _ABNORMAL_P:
        return "abnormal"
    # "exited": the user left mid-flow (tab closed, app backgrounded); "ok": ended cleanly.
    return "exited" if rng.random() < _EXITED_SHARE else "ok"


def _features(w: _Writer, plan: _SessionPlan) -> None:
    rng, features = w.rng, plan.world.catalog.features
    drop = _DECAY_SUCCESS_DROP * plan.decay
    for _ in range(rng.randint(1, 8)):
        feature, success = features[rng.randrange(len(features))]
        w.emit(
            plan.moment(rng),
            FeatureUsed,
            feature=feature,
            success=rng.random() < success - drop,
            duration_ms=round(rng.lognormvariate(6.4, 0.7), 1),
        )


def _requests(w: _Writer, plan: _SessionPlan) -> int:
    """Emits the session's requests (and an error event for some 5xx); returns the error events emitted."""
    rng, operations = w.rng, plan.world.catalog.operations
    slow = _REGRESSION_LATENCY_FACTOR if plan.regressing else 1.0
    server_p = _SERVER_ERROR_P * (_REGRESSION_SERVER_ERROR_FACTOR if plan.regressing else 1.0)
    errors = 0
    for _ in range(rng.randint(1, 10)):
        operation, median_ms = operations[rng.randrange(len(operations))]
        t = plan.moment(rng)
        latency = min(median_ms * slow * rng.lognormvariate(0.0, 0.55), 120_000.0)
        r = rng.random()
        if r < server_p:
            status, error = _SERVER_ERRORS[rng.randrange(len(_SERVER_ERRORS))]
        elif r < server_p + _CLIENT_ERROR_P:
            status, error = (404 if rng.random() < 0.8 else 429), ""
        else:
            status, error = 200, ""
        w.emit(t, Request, operation=operation, latency_ms=round(latency, 1), status_code=status, error=error)
        if status >= 500 and rng.random() < 0.5:
            w.emit(t + 0.001, Error, kind="HTTPError", handled=True)
            errors += 1
    return errors


def _handled_errors(w: _Writer, plan: _SessionPlan, platform: str) -> int:
    if w.rng.random() >= _HANDLED_ERROR_P:
        return 0
    kinds = _HANDLED_KINDS[platform]
    w.emit(plan.moment(w.rng), Error, kind=kinds[w.rng.randrange(len(kinds))], handled=True)
    return 1


def _conversions(w: _Writer, plan: _SessionPlan) -> None:
    rng = w.rng
    for goal, probability, median_value in plan.world.catalog.goals:
        if rng.random() < probability:
            value = round(rng.lognormvariate(math.log(median_value), 0.6), 2) if median_value else 0.0
            w.emit(plan.moment(rng), Conversion, goal=goal, value=value, currency="USD")


def _feedback(w: _Writer, plan: _SessionPlan) -> None:
    rng = w.rng
    if rng.random() >= _FEEDBACK_P:
        return
    crashed = plan.status == "crashed"
    if rng.random() < 0.8:
        mean = 8.3 - _DECAY_NPS_DROP * plan.decay - (2.5 if crashed else 0.0)
        kind, score = "nps", min(10, max(0, round(rng.gauss(mean, 1.8))))
    else:
        mean = 4.2 - _DECAY_CSAT_DROP * plan.decay - (1.5 if crashed else 0.0)
        kind, score = "csat", min(5, max(1, round(rng.gauss(mean, 0.9))))
    w.emit(plan.moment(rng), Feedback, kind=kind, score=score)


def _support_ticket(w: _Writer, plan: _SessionPlan) -> None:
    rng = w.rng
    crashed = plan.status == "crashed"
    p = _TICKET_P * (3.0 if crashed else 1.0) * (1.0 + _DECAY_TICKET_GROWTH * plan.decay)
    if rng.random() >= p:
        return
    ticket_id = f"T-{rng.getrandbits(48):012x}"
    severity = "high" if crashed else rng.choices(_SEVERITIES, weights=_SEVERITY_WEIGHTS)[0]
    opened = plan.moment(rng)
    w.emit(opened, SupportTicket, ticket_id=ticket_id, action="opened", severity=severity)
    # Support resolves critical tickets first; the long lognormal tail is the backlog.
    delay = rng.lognormvariate(math.log(_TICKET_MEDIAN_RESOLVE_S), 0.9) / (4.0 if severity == "critical" else 1.0)
    resolved = opened + 60.0 + delay
    # The resolution happens outside the session, on whatever release the user runs by then.
    env = {**w.env, "session_id": "", "version": plan.world.version_at(plan.user, resolved)}
    w.emit(resolved, SupportTicket, env=env, ticket_id=ticket_id, action="resolved", severity=severity)


def _session(rng: random.Random, cfg: TrafficConfig, world: _ProductWorld, t0: float) -> list[tuple[int, Event]]:
    """One user session: start, activity, optional crash, end. Returns (ts in us, event) pairs."""
    progress = t0 / cfg.span.total_seconds()
    user = rng.randrange(world.active_users(progress))
    version = world.version_at(user, t0)
    regressing = version == world.regress_version
    plan = _SessionPlan(
        world=world,
        user=user,
        t0=t0,
        duration=min(rng.lognormvariate(math.log(150.0), 0.8) + 20.0, 2 * _HOUR_S),
        regressing=regressing,
        decay=world.decay(progress),
        status=_session_status(rng, regressing),
    )
    platform = world.platforms[user]
    env = {
        "product": world.name,
        "version": version,
        "user_id": f"u-{world.name}-{user}",
        "session_id": str(_uuid(rng)),
        "platform": platform,
        "environment": "production",
    }
    w = _Writer(rng, cfg.start, _span_us(cfg), env)
    w.emit(t0, SessionStarted)
    _features(w, plan)
    errors = _requests(w, plan) + _handled_errors(w, plan, platform)
    _conversions(w, plan)
    _feedback(w, plan)
    _support_ticket(w, plan)
    end = t0 + plan.duration
    if plan.status == "crashed":
        kinds = _CRASH_KINDS[platform]
        w.emit(end - 0.0005, Error, kind=kinds[rng.randrange(len(kinds))], handled=False)
        errors += 1
    w.emit(end, SessionEnded, status=plan.status, errors=errors, duration_ms=round(plan.duration * 1000, 1))
    return w.out


def _session_starts(rng: random.Random, cfg: TrafficConfig, world: _ProductWorld, lo: float, hi: float) -> list[float]:
    mid = (lo + hi) / 2
    start = cfg.start
    hour = (start.hour + (start.minute * 60 + start.second + start.microsecond / _US + mid) / _HOUR_S) % 24
    progress = mid / cfg.span.total_seconds()
    lam = world.active_users(progress) * cfg.sessions_per_user_per_day * (hi - lo) / _DAY_S * _diurnal(hour)
    return [rng.uniform(lo, hi) for _ in range(_poisson(rng, lam))]


def traffic(cfg: TrafficConfig) -> Iterator[Event]:
    """Stream the configured traffic, sorted by ``ts``; see the module docstring for the guarantees."""
    if cfg.max_events == 0:
        return
    worlds = [_product_world(cfg, product) for product in cfg.products]
    rng = random.Random(f"{cfg.seed}/traffic")
    # Sessions and ticket resolutions spill past their slice; the heap holds them until their slice.
    pending: list[tuple[int, int, Event]] = []
    seq = itertools.count()
    emitted = 0
    span_s, span_us = cfg.span.total_seconds(), _span_us(cfg)
    for lo, hi in _slices(cfg):
        for world in worlds:
            for t0 in _session_starts(rng, cfg, world, lo, hi):
                for us, event in _session(rng, cfg, world, t0):
                    heapq.heappush(pending, (us, next(seq), event))
        # Later sessions start at or after `hi`, so everything before it is final.
        cut = int(hi * _US) if hi < span_s else span_us
        while pending and pending[0][0] < cut:
            yield heapq.heappop(pending)[2]
            emitted += 1
            if emitted == cfg.max_events:
                return
