"""Scenario files: products, their volume and seasons, and releases with their true effects.

A scenario (YAML) names products; each product has a base behaviour and a list
of releases. A release's effects are multipliers on the product's base crash
rate, error rate and latency; a release with no effects behaves exactly like
the base (an A/A release). Rolling back is a release of an older version's
name with that version's effects. Times are in days from the scenario's start.

The truth of a release is decided against what served before it: **severe**
(must page) when a crash or error rate is at least x2 or the latency x1.5 its
predecessor's; **healthy** when every effect equals its predecessor's (A/A),
or it is better; anything in between is **mild**: paging on it is neither
required nor counted against the judge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SEVERE_RATE, SEVERE_LATENCY = 2.0, 1.5
Truth = Literal["severe", "healthy", "mild"]


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    day: float  # when it starts rolling out (days from the start; <= 0: already serving at the start)
    announced: bool = True
    rollout: list[tuple[float, float]] = [(0.0, 100.0)]  # (hours after release, target % of users) steps
    crash: float = Field(1.0, gt=0)
    errors: float = Field(1.0, gt=0)
    latency: float = Field(1.0, gt=0)

    def target(self, hours: float) -> float:
        """The rollout's target share of users at ``hours`` after the release (0..1)."""
        pct = 0.0
        for h, p in self.rollout:
            if hours >= h:
                pct = p
        return pct / 100.0


class Incident(BaseModel):
    """A rise that every version of the product shows (a backend, a dependency): not any release's doing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: float  # when it starts (days from the start)
    hours: float = Field(gt=0)
    crash: float = Field(1.0, gt=0)  # multipliers on every version's crash and error rates meanwhile
    errors: float = Field(1.0, gt=0)


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    users_per_day: float = Field(gt=0)
    sessions_per_user: float = Field(1.2, gt=0)
    requests_per_session: float = Field(3.0, gt=0)
    crash_rate: float = Field(0.01, ge=0, lt=1)
    error_rate: float = Field(0.005, ge=0, lt=1)
    latency_ms: float = Field(200.0, gt=0)  # median request latency
    latency_sigma: float = Field(0.5, gt=0)  # of the lognormal
    latency_creep: float = Field(1.0, gt=0)  # latency multiplier reached at the end (geometric; no release)
    adopt_hours: float = Field(6.0, gt=0)  # users move to a new version with this time constant
    # The hour of the day (UTC) its traffic peaks at, i.e. where its users live. None: drawn per seed (any hour),
    # so a release's first hours fall in the evening, at night or in the morning of its users' day.
    peak_hour: float | None = Field(None, ge=0, lt=24)
    # Late events: this share of each hour's events (of late_fields) reaches the store only 2..6 h later (each
    # delay in late_hours equally likely); the judge at a look sees what had arrived by then.
    late_share: float = Field(0.0, ge=0, lt=1)
    late_hours: tuple[int, int] = (2, 6)
    late_fields: list[Literal["sessions", "crashed", "requests", "failed"]] = [
        "sessions", "crashed", "requests", "failed"]  # fmt: skip
    incidents: list[Incident] = []
    releases: list[Release]

    def truth(self, i: int) -> Truth:
        """Release ``i`` against the release that served before it."""
        if i == 0:
            return "healthy"
        new, old = self.releases[i], self.releases[i - 1]
        rc, re_, rl = new.crash / old.crash, new.errors / old.errors, new.latency / old.latency
        if rc >= SEVERE_RATE or re_ >= SEVERE_RATE or rl >= SEVERE_LATENCY:
            return "severe"
        if rc <= 1 and re_ <= 1 and rl <= 1:
            return "healthy"
        return "mild"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    days: int = Field(28, ge=2, le=120)
    weekly: float = Field(0.25, ge=0, lt=1)  # weekend traffic dip, for every product
    holidays: list[int] = []  # days with half the traffic, for every product
    products: list[Product]


class ScenarioError(ValueError):
    """A scenario file is invalid (names the file and the field)."""


def load(path: Path) -> Scenario:
    try:
        data = yaml.safe_load(path.read_text())
        return Scenario.model_validate(_expand(data))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ScenarioError(f"{path}: {problems}") from None


def _expand(data: dict) -> dict:  # type: ignore[type-arg]
    """``grid:`` entries make one product per combination of volumes and effects (for libraries of cases)."""
    products = []
    for p in data.get("products", []):
        grid = p.pop("grid", None) if isinstance(p, dict) else None
        if not grid:
            products.append(p)
            continue
        for users in grid.get("users_per_day", [p.get("users_per_day")]):
            for k, effect in enumerate(grid.get("effects", [{}])):
                q = dict(p, users_per_day=users, name=f"{p['name']}-{int(users)}-{k}")
                q["releases"] = [dict(r, **(effect if r.get("effect") else {})) for r in p["releases"]]
                for r in q["releases"]:
                    r.pop("effect", None)
                products.append(q)
    return dict(data, products=products)


def library(folder: Path) -> list[tuple[Path, Scenario]]:
    return [(f, load(f)) for f in sorted(folder.glob("*.yaml"))]
