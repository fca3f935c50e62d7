"""Rule unit tests in the spirit of ``promtool test rules``: given series in, expected alerts out.

A test file::

    rule_files: [../slo.yaml]          # relative to the test file
    evaluation_interval: 1m
    tests:
      - name: fast burn pages
        interval: 1m                   # step of the input series (default: evaluation_interval)
        input_series:
          - metric: crash_rate         # or `signal: release_regression`
            labels: {product: checkout}
            values: "0.001x30 0.2x30"  # promtool notation, see expand_values
            window: 1h                 # optional: only for rules reading this window
            volume: 500                # optional: a number or a values string
            evidence: {sentences: [...]}  # optional: the sample's evidence ($evidence in templates)
        alert_rule_test:
          - eval_time: 40m
            alertname: CrashBudgetFastBurn
            exp_alerts:                # firing alerts; [] = nothing fires
              - exp_labels: {product: checkout, severity: page}
                exp_annotations: {summary: "..."}

A series' value at time t is what the rule's source would return at t for
its window - the series stands in for the windowed query, so tests need no
store. The volume that ``min_volume`` reads is a series of the rule's volume
metric with the same labels, else the series' own ``volume``, else unlimited.
Every rule is evaluated from time 0 every ``evaluation_interval`` (group
intervals are not used) and at each ``eval_time``; ``exp_labels`` must equal
the alert's labels (without ``alertname``); ``exp_annotations``, when given,
must equal its annotations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from alerts.durations import format_duration
from alerts.errors import RuleFileError, RuleTestFileError
from alerts.rules import LoadedRule, Seconds, SignalName, load_rules
from alerts.sample import Sample
from alerts.sources import burn_sample
from alerts.statemachine import Alert, advance

BASE = datetime(1970, 1, 1, tzinfo=UTC)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"(?P<a>{_NUM})(?:(?P<sign>[-+])(?P<b>{_NUM}))?x(?P<n>\d+)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputSeries(_Strict):
    metric: str | None = None
    signal: SignalName | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    values: str
    volume: float | str | None = None
    window: Seconds | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)


class ExpAlert(_Strict):
    exp_labels: dict[str, str] = Field(default_factory=dict, validation_alias=AliasChoices("exp_labels", "labels"))
    exp_annotations: dict[str, str] | None = Field(
        None, validation_alias=AliasChoices("exp_annotations", "annotations")
    )


class AlertRuleTest(_Strict):
    eval_time: Seconds
    alertname: str
    exp_alerts: list[ExpAlert] = Field(default_factory=list)


class TestCase(_Strict):
    name: str | None = None
    interval: Seconds | None = None
    input_series: list[InputSeries] = Field(default_factory=list)
    alert_rule_test: list[AlertRuleTest] = Field(default_factory=list)


class TestFile(_Strict):
    rule_files: list[str]
    evaluation_interval: Seconds = 60.0
    tests: list[TestCase]


def expand_values(text: str) -> list[float | None]:
    """promtool's series notation: ``a``, ``_`` (missing), ``axn`` / ``a+bxn`` / ``a-bxn`` (n+1 values), ``_xn``."""
    out: list[float | None] = []
    for token in text.split():
        if token in ("_", "stale"):
            out.append(None)
            continue
        if token.startswith("_x") and token[2:].isdigit():
            out += [None] * int(token[2:])
            continue
        m = _TOKEN.fullmatch(token)
        if m:
            a, n = float(m["a"]), int(m["n"])
            b = float(m["b"]) * (-1 if m["sign"] == "-" else 1) if m["b"] else 0.0
            out += [a + i * b for i in range(n + 1)]
            continue
        try:
            out.append(float(token))
        except ValueError:
            raise ValueError(f"bad series value {token!r} in {text!r}") from None
    return out


@dataclass
class _Series:
    spec: InputSeries
    values: list[float | None]
    volumes: list[float | None] | float | None

    def at(self, idx: int) -> float | None:
        return self.values[idx] if 0 <= idx < len(self.values) else None

    def volume_at(self, idx: int) -> float:
        if self.volumes is None:
            return math.inf
        if isinstance(self.volumes, float):
            return self.volumes
        v = self.volumes[idx] if 0 <= idx < len(self.volumes) else None
        return math.nan if v is None else v


class SeriesSource:
    """Samples from given series: index ``(now - BASE) // interval`` of each matching series."""

    def __init__(self, series: Sequence[InputSeries], interval_s: float) -> None:
        self.interval_s = interval_s
        self.series = []
        for s in series:
            vol: list[float | None] | float | None
            if s.volume is None:
                vol = None
            elif isinstance(s.volume, str):
                vol = expand_values(s.volume)
            else:
                vol = float(s.volume)
            self.series.append(_Series(s, expand_values(s.values), vol))

    def _find(self, metric: str, window: float, labels: dict[str, str] | None = None) -> list[_Series]:
        return [
            s
            for s in self.series
            if s.spec.metric == metric
            and (s.spec.window is None or s.spec.window == window)
            and (labels is None or s.spec.labels == labels)
        ]

    def samples(self, rule: LoadedRule, now: datetime) -> list[Sample]:
        r = rule.rule
        idx = int((now - BASE).total_seconds() // self.interval_s)

        def volume(s: _Series, window: float) -> float:
            mv = r.min_volume
            if mv is not None and mv.metric is not None:
                found = self._find(mv.metric, mv.window or window, s.spec.labels)
                if found:
                    v = found[0].at(idx)
                    return math.nan if v is None else v
            return s.volume_at(idx)

        out: list[Sample] = []
        if r.signal is not None:
            for s in self.series:
                v = s.at(idx)
                if s.spec.signal == r.signal and v is not None:
                    out.append(Sample(dict(s.spec.labels), v, s.volume_at(idx), s.spec.evidence))
        elif r.metric is not None:
            for s in self._find(r.metric, r.window_s):
                v = s.at(idx)
                if v is not None:
                    out.append(Sample(dict(s.spec.labels), v, volume(s, r.window_s), s.spec.evidence))
        elif r.burn_rate is not None:
            br = r.burn_rate
            shorts = {tuple(sorted(s.spec.labels.items())): s for s in self._find(br.metric, br.short)}
            for s in self._find(br.metric, br.long):
                short = shorts.get(tuple(sorted(s.spec.labels.items())))
                lv, sv = s.at(idx), short.at(idx) if short else None
                if lv is None:
                    continue
                out.append(burn_sample(r, s.spec.labels, lv, math.nan if sv is None else sv, volume(s, br.long)))
        return out


@dataclass(frozen=True)
class RuleTestFailure:
    file: str
    test: str
    message: str
    alertname: str = ""
    eval_time: str = ""
    expected: list[dict[str, Any]] = field(default_factory=list)
    got: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def text(self) -> str:
        head = f"FAILED {self.file}, test {self.test!r}"
        if self.alertname:
            head += f", alertname {self.alertname}, eval_time {self.eval_time}"
        lines = [f"{head}: {self.message}"]
        if self.alertname:
            lines += [f"  expected: {self.expected}", f"  got:      {self.got}"]
        return "\n".join(lines)


@dataclass
class RuleTestReport:
    files: list[str] = field(default_factory=list)
    tests: int = 0
    checks: int = 0
    failures: list[RuleTestFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and self.checks > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "files": self.files,
            "tests": self.tests,
            "checks": self.checks,
            "failures": [f.to_json() for f in self.failures],
        }

    def text(self) -> str:
        lines = [f.text() for f in self.failures]
        verdict = "SUCCESS" if self.ok else "FAILED"
        lines.append(f"{verdict}: {self.tests} tests, {self.checks} checks, {len(self.failures)} failures")
        return "\n".join(lines)


def _files(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.y*ml")) if p.is_dir() else [p]
    return out


def _got(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    return sorted(
        (
            {
                "labels": {k: v for k, v in a.labels.items() if k != "alertname"},
                "annotations": dict(a.annotations),
            }
            for a in alerts
            if a.state == "firing"
        ),
        key=lambda d: sorted(d["labels"].items()),
    )


def _matches(expected: list[ExpAlert], got: list[dict[str, Any]]) -> bool:
    left = list(got)
    for exp in expected:
        for i, g in enumerate(left):
            if g["labels"] == exp.exp_labels and (
                exp.exp_annotations is None or g["annotations"] == exp.exp_annotations
            ):
                del left[i]
                break
        else:
            return False
    return not left


def run_test_file(path: Path, report: RuleTestReport) -> None:
    name = str(path)
    report.files.append(name)
    try:
        spec = TestFile.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        report.failures.append(RuleTestFailure(name, "", f"cannot read test file: {e}"))
        return
    try:
        rules = load_rules([path.parent / f for f in spec.rule_files])
    except RuleFileError as e:
        report.failures.append(RuleTestFailure(name, "", "rule files are invalid: " + "; ".join(e.problems)))
        return
    for n, case in enumerate(spec.tests):
        test_name = case.name or f"#{n}"
        report.tests += 1
        try:
            source = SeriesSource(case.input_series, case.interval or spec.evaluation_interval)
        except ValueError as e:
            report.failures.append(RuleTestFailure(name, test_name, str(e)))
            continue
        known = {r.name for r in rules.rules}
        for check in case.alert_rule_test:
            if check.alertname not in known:
                report.failures.append(
                    RuleTestFailure(name, test_name, f"no rule named {check.alertname!r} in {spec.rule_files}")
                )
        if not case.alert_rule_test:
            continue
        last = max(c.eval_time for c in case.alert_rule_test)
        step = spec.evaluation_interval
        times = {i * step for i in range(int(last // step) + 1)} | {c.eval_time for c in case.alert_rule_test}
        state: dict[str, dict[str, Alert]] = {r.name: {} for r in rules.rules}
        snapshots: dict[float, dict[str, list[dict[str, Any]]]] = {}
        for t in sorted(times):
            now = BASE + timedelta(seconds=t)
            for rule in rules.rules:
                advance(rule, state[rule.name], source.samples(rule, now), now)
            snapshots[t] = {name_: _got(alerts.values()) for name_, alerts in state.items()}
        for check in case.alert_rule_test:
            if check.alertname not in known:
                continue
            report.checks += 1
            got = snapshots[check.eval_time][check.alertname]
            if not _matches(check.exp_alerts, got):
                report.failures.append(
                    RuleTestFailure(
                        name,
                        test_name,
                        "firing alerts differ",
                        check.alertname,
                        format_duration(check.eval_time),
                        [e.model_dump(exclude_none=True) for e in check.exp_alerts],
                        got,
                    )
                )


def run_rule_tests(paths: Iterable[Path | str]) -> RuleTestReport:
    """Run every rule unit-test file in ``paths`` (files or folders of ``*.yaml``)."""
    report = RuleTestReport()
    files = _files(paths)
    if not files:
        raise RuleTestFileError("no rule test files found")
    for path in files:
        run_test_file(path, report)
    return report
