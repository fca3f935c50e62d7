"""The scorecard's policy: periods, floors, weights and the signals of each dimension (``alerts/scorecard.yaml``).

:func:`load_config` reads the YAML and validates it (one message naming the
file and every bad field); :class:`ScorecardConfig`'s defaults equal the
shipped file. What the numbers mean is in :mod:`alerts.scorecard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.errors import AlertsError
from alerts.estimates import ESTIMATORS
from pipeline import catalog

DIMENSIONS: tuple[str, ...] = ("business impact", "customer experience", "post-launch support", "performance")
CONFIG_PATH = Path(__file__).with_name("scorecard.yaml")

Kind = Literal["fall", "rise", "failure_rise", "drop", "slo"]


class ScorecardConfigError(AlertsError, ValueError):
    """The scorecard policy file is invalid (names the file and the field)."""


class SignalSpec(BaseModel):
    """How one catalog metric becomes a 0-100 score (see ``alerts/scorecard.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str
    kind: Kind
    bad: float = Field(gt=0)
    weight: float = Field(1.0, gt=0)

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in catalog.CATALOG:  # pydantic reports ValueErrors with their field; UnknownMetric is a KeyError
            raise ValueError(f"unknown metric {v!r}; `pulse metrics list` shows the catalog")
        if v not in ESTIMATORS:  # every signal has an interval, so no signal is scored on a point alone
            raise ValueError(f"metric {v!r} has no interval model; scorable signals: {', '.join(sorted(ESTIMATORS))}")
        return v

    @model_validator(mode="after")
    def _bad_on_the_bad_side(self) -> SignalSpec:
        if self.kind == "fall" and not self.bad < 1:
            raise ValueError(f"{self.metric}: a 'fall' signal needs bad < 1 (a ratio of the baseline)")
        if self.kind in ("rise", "failure_rise", "slo") and not self.bad > 1:
            raise ValueError(f"{self.metric}: a {self.kind!r} signal needs bad > 1 (a multiple)")
        return self


class TrendTest(BaseModel):
    """A dimension whose score falls significantly over the period is evidence before its interval crosses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.01, gt=0, lt=0.5)  # one-sided false-alarm rate of "declining"
    min_drop: float = Field(15.0, ge=0)  # ... and the fitted fall over the period is at least this many points
    min_points: int = Field(7, ge=4)  # days with a score needed to fit a trend


class ReleaseTrend(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    releases: int = Field(3, ge=2)
    min_drop: float = Field(5.0, ge=0)
    min_days: int = Field(2, ge=1)


def _default_signals() -> dict[str, list[SignalSpec]]:
    s = SignalSpec
    return {
        "business impact": [s(metric="dau", kind="fall", bad=0.6), s(metric="conversion_rate", kind="fall", bad=0.5)],
        "customer experience": [
            s(metric="crash_free_sessions", kind="failure_rise", bad=3.0),
            s(metric="task_success_rate", kind="failure_rise", bad=3.0),
            s(metric="nps", kind="drop", bad=40),
            s(metric="csat", kind="drop", bad=1.0),
        ],
        "post-launch support": [
            s(metric="tickets_per_1k_sessions", kind="rise", bad=3.0),
            s(metric="time_to_resolve_h", kind="rise", bad=3.0),
        ],
        "performance": [
            s(metric="latency_p95_ms", kind="slo", bad=2.0),
            s(metric="error_rate", kind="rise", bad=3.0),
        ],
    }


class ScorecardConfig(BaseModel):
    """Periods, floors, weights and signals of the scorecard; defaults equal the shipped ``scorecard.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(0.95, gt=0.5, lt=1)
    period_days: int = Field(14, ge=1, le=90)
    min_days_below: int = Field(1, ge=1)
    window_days: int = Field(7, ge=1, le=28)
    baseline_days: int = Field(14, ge=1, le=90)
    reference_lookback_days: int = Field(42, ge=2, le=365)
    young_reference_days: int = Field(7, ge=1, le=90)
    min_dimensions_below: int = Field(2, ge=1, le=len(DIMENSIONS))
    exit_margin: float = Field(5.0, ge=0, le=100)
    trend: TrendTest = Field(default_factory=TrendTest)
    floors: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(DIMENSIONS, 70.0))
    weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0))
    latency_slo_ms: float = Field(1000.0, gt=0)
    product_latency_slo_ms: dict[str, float] = Field(default_factory=dict)
    release_trend: ReleaseTrend = Field(default_factory=ReleaseTrend)
    signals: dict[str, list[SignalSpec]] = Field(default_factory=_default_signals)

    @model_validator(mode="after")
    def _dimensions_complete(self) -> ScorecardConfig:
        for name, table in (("floors", self.floors), ("weights", self.weights), ("signals", self.signals)):
            if set(table) != set(DIMENSIONS):
                raise ValueError(f"{name} must name exactly the dimensions {list(DIMENSIONS)}, got {sorted(table)}")
        for dim, floor in self.floors.items():
            if not 0 <= floor <= 100:
                raise ValueError(f"floors.{dim} must be within 0..100")
        if any(w < 0 for w in self.weights.values()) or not any(self.weights.values()):
            raise ValueError("weights must be >= 0 and not all zero")
        if self.min_days_below > self.period_days:
            raise ValueError("min_days_below cannot exceed period_days")
        if self.reference_lookback_days < self.baseline_days + self.window_days:
            raise ValueError(
                "reference_lookback_days must cover baseline_days + window_days, so that a product older than that "
                "has a whole reference before the window scored"
            )
        return self

    def slo_ms(self, product: str) -> float:
        return self.product_latency_slo_ms.get(product, self.latency_slo_ms)


def load_config(path: Path | None = None) -> ScorecardConfig:
    """The scorecard policy from YAML (default: the shipped ``alerts/scorecard.yaml``)."""
    path = path or CONFIG_PATH
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScorecardConfigError(f"{path}: {exc}") from None
    try:
        return ScorecardConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ScorecardConfigError(f"{path}: {problems}") from None
