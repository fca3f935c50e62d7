"""Rule files (alerts/rules.py), templates and rule unit tests: what is rejected, and how it is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from alerts.errors import RuleFileError
from alerts.rules import check_files, load_rules, shipped_rules_dir
from alerts.ruletest import expand_values, run_rule_tests
from alerts.template import TemplateError, compile_template

GOOD_RULE = """
      - alert: {name}
        metric: crash_rate
        window: 1h
        op: ">"
        threshold: 0.05
        min_volume: {{metric: sessions, min: 200}}
        labels: {{severity: page, audience: oncall}}
        annotations: {{summary: "{{{{ product }}}} crash rate {{{{ value | percent }}}}"}}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def rule_file(tmp_path: Path, rule: str, name: str = "r.yaml", group: str = "g") -> Path:
    return write(
        tmp_path, name, f"groups:\n  - name: {group}\n    rules:\n{textwrap.indent(textwrap.dedent(rule), '      ')}"
    )


def problems_of(tmp_path: Path, rule: str) -> list[str]:
    return check_files([rule_file(tmp_path, rule)])


BASE = """\
- alert: Bad
  metric: crash_rate
  window: 1h
  op: ">"
  threshold: 0.05
  labels: {severity: page}
"""


def test_a_good_file_loads_with_its_rules(tmp_path: Path) -> None:
    p = write(tmp_path, "ok.yaml", "groups:\n  - name: g\n    interval: 2m\n    rules:" + GOOD_RULE.format(name="A"))
    rules = load_rules([p])
    (group,) = rules.groups
    assert group.interval_s == 120 and [r.name for r in group.rules] == ["A"]
    r = rules.rule("A")
    assert r.rule.window_s == 3600 and r.rule.group_by == ("product",)
    assert r.render({"product": "x"}, 0.123, 500) == {"summary": "x crash rate 12.3%"}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"metric": "crash_ratio"}, "metric", "unknown metric 'crash_ratio'"),
        ({"window": "1 hour"}, "window", "bad duration"),
        ({"window": "5x"}, "window", "bad duration"),
        ({"for": "-5m"}, "for", "bad duration"),
        ({"annotations": "{summary: '{{ produkt }} down'}"}, "annotations.summary", "unknown variable 'produkt'"),
        ({"annotations": "{summary: '{{ value | percentage }}'}"}, "annotations.summary", "unknown function"),
        ({"annotations": "{summary: '{{ value '}"}, "annotations.summary", "unbalanced braces"),
        ({"labels": "{severity: page, team: 'x; DROP TABLE pulse.events'}"}, "labels.team", "looks like SQL"),
        ({"labels": '{severity: page, team: "a\' -- comment"}'}, "labels.team", "looks like SQL"),
        ({"annotations": "{summary: 'SELECT * FROM pulse.events'}"}, "annotations.summary", "looks like SQL"),
        ({"labels": "{severity: critical}"}, "labels.severity", "severity must be one of"),
        ({"threshold": "high"}, "threshold", "valid number"),
        ({"query": "'SELECT 1'"}, "query", "Extra inputs are not permitted"),
        ({"by": "[product, platform]"}, "by", "cannot group by 'platform'"),
        ({"resolve_threshold": "0.09"}, "resolve_threshold", "at or below the threshold"),
        ({"op": "=="}, "op", "Input should be"),
        ({"min_volume": "{metric: sessions, min: 10, widen_to: 30m}"}, "min_volume.widen_to", "longer than the window"),
    ],
)
def test_bad_rules_are_rejected_naming_file_group_rule_and_field(
    tmp_path: Path, change: dict[str, str], field: str, says: str
) -> None:
    lines = []
    for line in BASE.splitlines():
        key = line.strip("- ").split(":")[0]
        if key in change:
            line = line.split(":")[0] + f": {change.pop(key)}"
        lines.append(line)
    lines += [f"  {k}: {v}" for k, v in change.items()]
    problems = problems_of(tmp_path, "\n".join(lines) + "\n")
    assert len(problems) == 1, problems
    (p,) = problems
    assert p.startswith(f"{tmp_path / 'r.yaml'}, group 'g', rule 'Bad', field '{field}': "), p
    assert says in p, p
    assert "\n" not in p


def test_duplicate_alert_names_across_files_and_every_problem_reported(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "groups:\n  - name: ga\n    rules:" + GOOD_RULE.format(name="Same"))
    b = write(tmp_path, "b.yaml", "groups:\n  - name: gb\n    rules:" + GOOD_RULE.format(name="Same"))
    c = rule_file(tmp_path, BASE.replace("crash_rate", "nope").replace("1h", "soon"), name="c.yaml", group="gc")
    with pytest.raises(RuleFileError) as err:
        load_rules([a, b, c])
    problems = err.value.problems
    assert any(p.startswith(f"{b}, group 'gb', rule 'Same', field 'alert': duplicate alert name") for p in problems)
    assert any("c.yaml, group 'gc', rule 'Bad', field 'window': bad duration" in p for p in problems)
    # pydantic stops at the bad duration; the unknown metric of the same rule is reported once the duration parses.
    assert len(problems) == 2, problems


def test_a_rule_needs_exactly_one_source(tmp_path: Path) -> None:
    both = BASE + "  signal: release_regression\n"
    (p,) = problems_of(tmp_path, both)
    assert "exactly one of metric, burn_rate, signal" in p


def test_evaluator_refuses_a_folder_with_one_bad_file(tmp_path: Path) -> None:
    write(tmp_path, "good.yaml", "groups:\n  - name: g1\n    rules:" + GOOD_RULE.format(name="Good"))
    rule_file(tmp_path, BASE.replace("crash_rate", "crash_ratee"), name="bad.yaml", group="g2")
    from alerts.evaluator import build_evaluator
    from pipeline.settings import Settings

    with pytest.raises(RuleFileError) as err:
        build_evaluator(Settings(data_dir=tmp_path / "d", alert_rules_dir=tmp_path))
    assert err.value.problems == [
        f"{tmp_path / 'bad.yaml'}, group 'g2', rule 'Bad', field 'metric': unknown metric 'crash_ratee' "
        "(see `pulse metrics list`)"
    ]


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "broken.yaml", "groups: [\n")
    (problem,) = check_files([p])
    assert problem.startswith(f"{p}: cannot read")


def test_templates() -> None:
    t = compile_template("{{product}}: {{ value | percent(2) }} / {{ volume|number }} in {{ secs | duration }}", [
        "product", "value", "volume", "secs",
    ])  # fmt: skip
    assert t.render({"product": "x", "value": 0.01234, "volume": 123456, "secs": 5400}) == "x: 1.23% / 123k in 1h30m"
    assert compile_template("{{ v | round(1) }}", ["v"]).render({"v": 2.345}) == "2.3"
    assert compile_template("{{ v | number }}", ["v"]).render({"v": "n/a"}) == "n/a"
    for bad in ("{{ x }}", "{{ v | upper }}", "{{ v.attr }}", "{{ v ", "v }}", "{{ v | percent(x) }}"):
        with pytest.raises(TemplateError):
            compile_template(bad, ["v"])


def test_promtool_series_notation() -> None:
    assert expand_values("1 _ 2x2 1+0.5x2 10-1x1 _x2") == [1, None, 2, 2, 2, 1, 1.5, 2, 10, 9, None, None]
    with pytest.raises(ValueError, match="bad series value"):
        expand_values("1 two")


def test_every_shipped_rule_file_passes_check_and_its_rule_tests() -> None:
    files = sorted(shipped_rules_dir().glob("*.yaml"))
    assert {f.name for f in files} >= {"slo.yaml", "performance.yaml", "product.yaml"}
    assert check_files(files) == []
    names = {r.name for r in load_rules(files).rules}
    assert {"CrashFreeBudgetFastBurn", "CrashFreeBudgetSlowBurn", "CrashFreeBudgetTicket", "LatencyP95OverSLO",
            "ErrorRateSpike", "ReleaseRegression", "RedesignCandidate"} <= names  # fmt: skip
    report = run_rule_tests([shipped_rules_dir() / "tests"])
    assert report.ok, report.text()
    # Every shipped rule file has a test file that loads it.
    tested = {line for f in (shipped_rules_dir() / "tests").glob("*.yaml") for line in f.read_text().splitlines()}
    for f in files:
        assert any(f"../{f.name}" in line for line in tested), f"no rule tests for {f.name}"


def test_a_failing_rule_test_says_what_was_expected_and_what_came_out(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", "groups:\n  - name: g\n    rules:" + GOOD_RULE.format(name="Crashy"))
    write(
        tmp_path,
        "t.yaml",
        """
        rule_files: [rules.yaml]
        evaluation_interval: 1m
        tests:
          - name: wrong expectation
            input_series:
              - {metric: crash_rate, labels: {product: feed}, values: "0.2x5", volume: 500}
              - {metric: sessions, labels: {product: feed}, values: "300x5"}
            alert_rule_test:
              - {eval_time: 2m, alertname: Crashy, exp_alerts: []}
              - eval_time: 3m
                alertname: Crashy
                exp_alerts: [{exp_labels: {product: feed, severity: page, audience: oncall}}]
              - {eval_time: 3m, alertname: NoSuchAlert, exp_alerts: []}
        """,
    )
    report = run_rule_tests([tmp_path / "t.yaml"])
    assert not report.ok and report.checks == 2 and len(report.failures) == 2
    (wrong,) = [f for f in report.failures if f.alertname]
    (unknown,) = [f for f in report.failures if not f.alertname]
    assert wrong.alertname == "Crashy" and wrong.eval_time == "2m" and wrong.expected == []
    assert wrong.got == [
        {"labels": {"product": "feed", "severity": "page", "audience": "oncall"}, "annotations": {
            "summary": "feed crash rate 20.0%"}}
    ]  # fmt: skip
    assert "expected: []" in report.text() and "got:" in report.text()
    assert "NoSuchAlert" in unknown.message
    assert {f["alertname"] for f in report.to_json()["failures"]} == {"Crashy", ""}
