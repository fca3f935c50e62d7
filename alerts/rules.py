"""Alert rule files: YAML shaped like Prometheus rule groups, validated before anything runs.

A file holds ``groups``; a group has a ``name``, an optional ``interval`` and
``rules``. A rule reads exactly one source:

* ``metric`` - a catalog metric (``pipeline.catalog.CATALOG``; never SQL) over a
  trailing ``window``, grouped ``by`` label dimensions (default ``[product]``);
* ``burn_rate`` - an SLO burn rate over a long and a short window of a ratio
  metric (``ratio: bad`` for an error ratio such as ``crash_rate``, ``good`` for a
  success ratio such as ``crash_free_sessions``): burn = bad ratio / (1 - objective);
  the rule's value is the smaller of the two burns and it matches when that is
  over ``factor`` - both windows burn at once, the multiwindow alert of the SRE workbook;
* ``signal`` - ``release_regression`` or ``redesign_candidate`` (1.0 = flagged; a release whose crash or
  error rate is confidently worse, not severely, is 0.5: ``alerts/regression.py`` ``samples``).

It compares the value with ``threshold`` using ``op`` (signals default to
``>= 1``, burn rates to ``> factor``); ``resolve_threshold`` adds hysteresis
(a firing alert keeps matching until the value crosses it); ``min_volume``
makes a series report *nodata* instead of matching at low traffic; ``for``,
``keep_firing_for``, ``labels`` and ``annotations`` (see :mod:`alerts.template`)
mean what they mean in Prometheus.

:func:`load_rules` checks every file completely and raises one
:class:`~alerts.errors.RuleFileError` listing every problem, one line each,
naming file, group, rule and field - the evaluator never runs half a rule set.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from alerts.durations import format_duration, parse_duration
from alerts.errors import RuleFileError
from alerts.template import Scope, Template, TemplateError, compile_template, template_values
from pipeline import catalog
from pipeline.catalog.metrics import SOURCES
from pipeline.settings import AlertSettings

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Op = Literal[">", ">=", "<", "<="]
SignalName = Literal["release_regression", "redesign_candidate"]

# The labels each signal's samples carry (alerts/sample.py documents the sources).
SIGNAL_LABELS: dict[str, tuple[str, ...]] = {
    "release_regression": ("product", "version", "baseline_version"),
    "redesign_candidate": ("product",),
}
# The evidence fields each source's samples carry, what ``$evidence.<field>`` may name (alerts/regression.py
# ``samples()``, alerts/scorecard.py ``sample()``, alerts/sources.py ``burn_sample()``; a test holds them to the
# real samples). Metric rules carry none. A field a source does not fill (yet) renders empty.
EVIDENCE_FIELDS: dict[str, tuple[str, ...]] = {
    "release_regression": (
        "released_at", "bake_s", "baseline_window", "comparison", "arrival", "severe_signals", "worse_signals",
        "sentences", "signals",
    ),
    "redesign_candidate": ("dimensions_below_floor", "composite", "scores", "evidence", "sentences"),
    "burn_rate": ("metric", "objective", "burn_long", "burn_short", "ratio_long", "ratio_short", "factor"),
    "metric": (),
}  # fmt: skip
SEVERITIES = ("page", "ticket", "info")
AUDIENCES = ("oncall", "pm")
# What every annotation may use besides the series' and the rule's labels.
BUILTIN_VARIABLES = (
    "alertname", "value", "threshold", "resolve_threshold", "window", "volume", "min_volume", "for", "keep_firing_for",
)  # fmt: skip

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL = (
    re.compile(r";"),
    re.compile(r"--"),
    re.compile(r"/\*|\*/"),
    re.compile(r"\bselect\b[\s\S]*\bfrom\b", re.I),
    re.compile(r"\b(insert\s+into|delete\s+from|union\s+(all\s+)?select)\b", re.I),
    re.compile(r"\b(drop|truncate|alter|create)\s+(table|database|view|user)\b", re.I),
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MinVolume(_Strict):
    """Below ``min`` of ``metric`` in ``window`` (default: the rule's window) a series is *nodata*.

    Without ``metric`` the source's own volume counts (signals: e.g. the new version's sessions).
    ``widen_to``: a series short of ``min`` is read again over a window four times as long, and again,
    up to ``widen_to`` - so a low-traffic product is judged on a longer window instead of never.
    """

    metric: str | None = None
    min: float = Field(ge=0)
    window: Seconds | None = None
    widen_to: Seconds | None = None


class BurnRate(_Strict):
    metric: str
    ratio: Literal["bad", "good"] = "bad"
    objective: float = Field(gt=0, lt=1)
    long: Seconds
    short: Seconds
    factor: float = Field(gt=0)


class Rule(_Strict):
    alert: str
    metric: str | None = None
    window: Seconds | None = None
    burn_rate: BurnRate | None = None
    signal: SignalName | None = None
    op: Op | None = None
    threshold: float | None = None
    resolve_threshold: float | None = None
    min_volume: MinVolume | None = None
    for_: Seconds = Field(0.0, alias="for")
    keep_firing_for: Seconds = 0.0
    by: list[str] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    # --- what the evaluator reads -------------------------------------------------
    @property
    def kind(self) -> Literal["metric", "burn_rate", "signal"]:
        if self.burn_rate is not None:
            return "burn_rate"
        if self.signal is not None:
            return "signal"
        return "metric"

    @property
    def comparison(self) -> Op:
        return self.op or (">" if self.kind == "burn_rate" else ">=")

    @property
    def limit(self) -> float:
        """The threshold in effect (a burn-rate rule's factor, a signal's 1.0 unless set)."""
        if self.threshold is not None:
            return self.threshold
        if self.burn_rate is not None:
            return self.burn_rate.factor
        return 1.0

    @property
    def window_s(self) -> float:
        if self.burn_rate is not None:
            return self.burn_rate.long
        return self.window or 0.0

    @property
    def group_by(self) -> tuple[str, ...]:
        if self.signal is not None:
            return SIGNAL_LABELS[self.signal]
        return tuple(self.by) if self.by is not None else ("product",)

    def matches(self, value: float, firing: bool) -> bool:
        """Does ``value`` meet the condition? A firing alert is held to ``resolve_threshold`` when set."""
        if math.isnan(value):
            return False
        limit = self.resolve_threshold if firing and self.resolve_threshold is not None else self.limit
        op = self.comparison
        if op == ">":
            return value > limit
        if op == ">=":
            return value >= limit
        if op == "<":
            return value < limit
        return value <= limit


class Group(_Strict):
    name: str
    interval: Seconds | None = None
    rules: list[Rule]


class RuleFile(_Strict):
    groups: list[Group]


@dataclass(frozen=True)
class LoadedRule:
    """A checked rule with its group, file and compiled annotation templates."""

    rule: Rule
    group: str
    file: str
    templates: Mapping[str, Template] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.rule.alert

    def variables(
        self, labels: Mapping[str, str], value: float, volume: float, evidence: Mapping[str, Any] | None = None
    ) -> dict[str, object]:
        """What templates render from: our flat names, and Prometheus' ``$labels``, ``$value``, ``$evidence``."""
        r = self.rule
        flat = {
            "alertname": r.alert,
            "threshold": r.limit,
            "resolve_threshold": r.resolve_threshold if r.resolve_threshold is not None else r.limit,
            "window": format_duration(r.window_s),
            "min_volume": r.min_volume.min if r.min_volume else 0,
            "for": format_duration(r.for_),
            "keep_firing_for": format_duration(r.keep_firing_for),
            **r.labels,
            **labels,
            "value": value,
            "volume": volume,
        }
        series = {**r.labels, **labels, "alertname": r.alert}
        return template_values(flat, series, value, evidence or {})

    def render(
        self, labels: Mapping[str, str], value: float, volume: float, evidence: Mapping[str, Any] | None = None
    ) -> dict[str, str]:
        variables = self.variables(labels, value, volume, evidence)
        # Stripped: a field the sample does not carry renders empty and must not leave a dangling space.
        return {k: t.render(variables).strip() for k, t in self.templates.items()}


@dataclass(frozen=True)
class LoadedGroup:
    name: str
    file: str
    interval_s: float | None
    rules: tuple[LoadedRule, ...]


@dataclass(frozen=True)
class RuleSet:
    groups: tuple[LoadedGroup, ...] = ()

    @property
    def rules(self) -> list[LoadedRule]:
        return [r for g in self.groups for r in g.rules]

    def rule(self, alertname: str) -> LoadedRule:
        for r in self.rules:
            if r.name == alertname:
                return r
        raise KeyError(alertname)


def _sql_like(text: str) -> str | None:
    """The SQL-looking part of ``text``, if any."""
    for p in _SQL:
        m = p.search(text)
        if m:
            return m.group(0)[:40]
    return None


def _metric_problems(name: str, field_name: str) -> list[tuple[str, str]]:
    if name not in catalog.CATALOG:
        return [(field_name, f"unknown metric {name!r} (see `pulse metrics list`)")]
    return []


def rule_problems(rule: Rule) -> list[tuple[str, str]]:
    """Semantic problems of a structurally valid rule as (field, message) pairs."""
    out: list[tuple[str, str]] = []
    if not _IDENT.fullmatch(rule.alert):
        out.append(("alert", f"alert name {rule.alert!r} must be an identifier (letters, digits, _)"))
    sources = [s for s in ("metric", "burn_rate", "signal") if getattr(rule, s) is not None]
    if len(sources) != 1:
        out.append(("metric", f"a rule needs exactly one of metric, burn_rate, signal (got {sources or 'none'})"))
        return out
    keys: tuple[str, ...] = ("product", "version")
    if rule.metric is not None:
        out += _metric_problems(rule.metric, "metric")
        if rule.window is None or rule.window <= 0:
            out.append(("window", "a metric rule needs a positive window, e.g. 5m, 1h, 3d"))
        if rule.op is None:
            out.append(("op", "a metric rule needs op: one of >, >=, <, <="))
        if rule.threshold is None:
            out.append(("threshold", "a metric rule needs a threshold"))
        if rule.metric in catalog.CATALOG:
            keys = SOURCES[catalog.CATALOG[rule.metric].source].keys
    if rule.burn_rate is not None:
        br = rule.burn_rate
        out += _metric_problems(br.metric, "burn_rate.metric")
        if br.metric in catalog.CATALOG and catalog.CATALOG[br.metric].unit != "ratio":
            out.append(("burn_rate.metric", f"{br.metric!r} is not a ratio metric"))
        if not 0 < br.short < br.long:
            out.append(("burn_rate.short", "short window must be positive and shorter than long"))
        if rule.window is not None:
            out.append(("window", "a burn_rate rule takes its windows from burn_rate.long and burn_rate.short"))
        if br.metric in catalog.CATALOG:
            keys = SOURCES[catalog.CATALOG[br.metric].source].keys
    if rule.signal is not None:
        if rule.by is not None:
            out.append(("by", f"signal {rule.signal} labels its own series: {', '.join(SIGNAL_LABELS[rule.signal])}"))
        if rule.window is not None:
            out.append(("window", "a signal rule has no window"))
    if rule.by is not None:
        for key in rule.by:
            if key not in keys:
                out.append(("by", f"cannot group by {key!r}; this metric has {', '.join(keys)}"))
        if len(set(rule.by)) != len(rule.by):
            out.append(("by", "repeated label"))
    if rule.resolve_threshold is not None:
        up = rule.comparison in (">", ">=")
        if (up and rule.resolve_threshold > rule.limit) or (not up and rule.resolve_threshold < rule.limit):
            side = "at or below" if up else "at or above"
            out.append(("resolve_threshold", f"must be {side} the threshold {rule.limit:g} for op {rule.comparison}"))
    mv = rule.min_volume
    if mv is not None:
        if mv.metric is not None:
            out += _metric_problems(mv.metric, "min_volume.metric")
            if mv.metric in catalog.CATALOG:
                mv_keys = SOURCES[catalog.CATALOG[mv.metric].source].keys
                for key in rule.group_by:
                    if key not in mv_keys:
                        out.append(("min_volume.metric", f"{mv.metric!r} cannot be grouped by {key!r}"))
        elif rule.signal is None:
            out.append(("min_volume.metric", "a metric or burn_rate rule names the volume metric, e.g. sessions"))
        if mv.widen_to is not None:
            if rule.kind != "metric" or mv.metric is None:
                out.append(("min_volume.widen_to", "only a metric rule with a min_volume.metric can widen its window"))
            elif mv.widen_to <= (mv.window or rule.window_s):
                out.append(("min_volume.widen_to", "must be longer than the window it widens"))
    if rule.for_ < 0 or rule.keep_firing_for < 0:
        out.append(("for", "durations must not be negative"))
    for key, value in rule.labels.items():
        where = f"labels.{key}"
        if not _IDENT.fullmatch(key):
            out.append((where, f"label name {key!r} must be an identifier"))
        if key == "alertname" or key in rule.group_by:
            out.append((where, f"label {key!r} is set by the evaluator"))
        sql = _sql_like(value) or _sql_like(key)
        if sql:
            out.append((where, f"looks like SQL ({sql!r}): rules name catalog metrics, never SQL"))
        if key == "severity" and value not in SEVERITIES:
            out.append((where, f"severity must be one of {', '.join(SEVERITIES)}"))
        if key == "audience" and value not in AUDIENCES:
            out.append((where, f"audience must be one of {', '.join(AUDIENCES)}"))
    for key, text in rule.annotations.items():
        sql = _sql_like(text) or _sql_like(key)
        if sql:
            out.append((f"annotations.{key}", f"looks like SQL ({sql!r}): rules name catalog metrics, never SQL"))
    return out


def template_scope(rule: Rule) -> Scope:
    """What this rule's annotations may name: variables, ``$labels`` (series, rule labels, alertname), evidence."""
    labels = frozenset(rule.group_by) | frozenset(rule.labels) | {"alertname"}
    return Scope(
        variables=frozenset(BUILTIN_VARIABLES) | frozenset(rule.group_by) | frozenset(rule.labels),
        labels=labels,
        evidence=frozenset(EVIDENCE_FIELDS[rule.signal or rule.kind]),
    )


def compile_annotations(rule: Rule) -> tuple[dict[str, Template], list[tuple[str, str]]]:
    scope = template_scope(rule)
    templates: dict[str, Template] = {}
    problems: list[tuple[str, str]] = []
    for key, text in rule.annotations.items():
        try:
            templates[key] = compile_template(text, scope)
        except TemplateError as e:
            problems.append((f"annotations.{key}", str(e)))
    return templates, problems


def _where(raw: Any, loc: tuple[int | str, ...]) -> tuple[str, str]:
    """(``group 'g', rule 'R'`` context, field path) for a pydantic error location."""
    context: list[str] = []
    node = raw
    rest = list(loc)
    try:
        if rest[:1] == ["groups"] and len(rest) > 1:
            group = node["groups"][rest[1]]
            context.append(f"group {group.get('name', '#' + str(rest[1]))!r}")
            rest = rest[2:]
            if rest[:1] == ["rules"] and len(rest) > 1:
                rule = group["rules"][rest[1]]
                context.append(f"rule {rule.get('alert', '#' + str(rest[1]))!r}")
                rest = rest[2:]
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return ", ".join(context), ".".join(str(p) for p in rest)


def _line(file: str, context: str, field_name: str, message: str) -> str:
    parts = [file] + ([context] if context else []) + ([f"field {field_name!r}"] if field_name else [])
    return f"{': '.join([', '.join(parts), message])}"


def rule_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files named by ``paths``: a folder stands for its ``*.yaml``/``*.yml`` files (not sub-folders)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file())
        else:
            out.append(p)
    return out


def load_rules(paths: Iterable[Path | str]) -> RuleSet:
    """Every rule in ``paths`` (files or folders), checked; raises RuleFileError listing all problems."""
    problems: list[str] = []
    groups: list[LoadedGroup] = []
    seen_alerts: dict[str, str] = {}
    seen_groups: dict[str, str] = {}
    files = rule_files(paths)
    if not files:
        raise RuleFileError(["no rule files found"])
    for path in files:
        name = str(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            problems.append(f"{name}: cannot read: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        try:
            parsed = RuleFile.model_validate(raw)
        except ValidationError as e:
            for err in e.errors():
                context, field_name = _where(raw, tuple(err["loc"]))
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(_line(name, context, field_name, msg))
            continue
        for group in parsed.groups:
            gctx = f"group {group.name!r}"
            if group.name in seen_groups:
                problems.append(_line(name, gctx, "name", f"duplicate group name (also in {seen_groups[group.name]})"))
            seen_groups[group.name] = name
            if group.interval is not None and group.interval <= 0:
                problems.append(_line(name, gctx, "interval", "must be positive"))
            if _sql_like(group.name):
                problems.append(_line(name, gctx, "name", f"looks like SQL ({_sql_like(group.name)!r})"))
            loaded = []
            for rule in group.rules:
                ctx = f"{gctx}, rule {rule.alert!r}"
                found = rule_problems(rule)
                templates, template_problems = compile_annotations(rule)
                found += template_problems
                if rule.alert in seen_alerts:
                    found.append(("alert", f"duplicate alert name (also in {seen_alerts[rule.alert]})"))
                seen_alerts.setdefault(rule.alert, f"{name}, {gctx}")
                problems += [_line(name, ctx, f, m) for f, m in found]
                loaded.append(LoadedRule(rule, group.name, name, templates))
            groups.append(LoadedGroup(group.name, name, group.interval, tuple(loaded)))
    if problems:
        raise RuleFileError(problems)
    return RuleSet(tuple(groups))


def check_files(paths: Iterable[Path | str]) -> list[str]:
    """Problems in the rule files, one line each; empty when all are fine."""
    try:
        load_rules(paths)
    except RuleFileError as e:
        return e.problems
    return []


def shipped_rules_dir() -> Path:
    return Path(__file__).resolve().parent / "rules"


def rules_paths(settings: AlertSettings) -> list[Path]:
    """The rule files these settings select: ``PULSE_ALERT_RULES_DIR``, else the shipped set."""
    return [settings.alert_rules_dir or shipped_rules_dir()]
