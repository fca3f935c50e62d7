"""Prometheus-style annotation templates beside ours: what renders, what ``pulse alerts check`` refuses, and
Prometheus' own humanize functions compared with the real Prometheus template engine (``promtool test rules``)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from alerts.rules import check_files, load_rules
from alerts.template import TemplateError, compile_template

SCOPE = {"labels": ["product", "severity", "alertname"], "evidence": ["sentences", "comparison"]}
VALUES = {
    "product": "search",
    "value": 0.0823,
    "$labels": {"product": "search", "severity": "page", "alertname": "A"},
    "$value": 0.0823,
    "$evidence": {"sentences": ["crash rate 8.20% on 2.0 vs 1.60% on 1.9", "p95 latency 416ms vs 224ms"]},
}


def render(text: str) -> str:
    return compile_template(text, ["product", "value"], **SCOPE).render(VALUES)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "out"),
    [
        ("{{ $labels.product }} at {{ $value }}", "search at 0.0823"),
        ("{{ .Labels.product }} {{ .Value | humanizePercentage }}", "search 8.23%"),
        ("{{ $value | humanize }}", "82.3m"),
        ("{{ humanizePercentage $value }}", "8.23%"),
        ('{{ printf "%.1f" $value }} / {{ $value | printf "%.3e" }}', "0.1 / 8.230e-02"),
        ("{{ $labels.severity | toUpper }}", "PAGE"),
        ("{{ $evidence.sentences | join }}", "crash rate 8.20% on 2.0 vs 1.60% on 1.9; p95 latency 416ms vs 224ms"),
        (
            '{{ $evidence.sentences | join " / " }}',
            "crash rate 8.20% on 2.0 vs 1.60% on 1.9 / p95 latency 416ms vs 224ms",
        ),
        ("{{ $evidence.comparison }}|", "|"),  # a field the sample does not carry renders empty
        ("{{ product }}: {{ value | percent(2) }}, {{ $labels.product }}", "search: 8.23%, search"),  # mixed
        ("a {{- $labels.product -}} b", "asearchb"),
    ],
)
def test_prometheus_style_renders_beside_ours(text: str, out: str) -> None:
    assert render(text) == out


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{{ $labels.produkt }}", "unknown label 'produkt'"),
        ("{{ $value | humanise }}", "unknown function 'humanise'"),
        ("{{ humanise $value }}", "unknown function 'humanise'"),
        ("{{ $values }}", "unknown variable $values"),
        ("{{ $evidence.sentence }}", "unknown evidence field 'sentence'"),
        ("{{ $value.x }}", "no fields"),
        ('{{ printf "%d and %d" $value }}', "exactly one verb"),
        ("{{ printf $value }}", "printf takes"),
        ("{{ humanize }}", "humanize needs a value"),
        ('{{ $value | humanize "x" }}', "humanize takes"),
        ("{{ $value | join 3 }}", "must be a quoted string"),
        ("{{ $value | percent 1.5 }}", "must be a whole number"),
        ("{{ $labels.product $value }}", "unknown function '$labels.product'"),
        ("{{ $value | }}", "bad substitution"),
    ],
)
def test_unknown_functions_labels_and_fields_are_refused(text: str, says: str) -> None:
    with pytest.raises(TemplateError) as err:
        render(text)
    assert says in str(err.value), err.value


def test_check_names_file_group_rule_and_field(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(
        textwrap.dedent("""\
        groups:
          - name: g
            rules:
              - alert: Crashy
                metric: crash_rate
                window: 1h
                op: ">"
                threshold: 0.05
                labels: {severity: page}
                annotations:
                  summary: "{{ $labels.product }} crashes {{ $value | humanizePercentage }}"
                  description: "{{ $labels.platform }} {{ $value | humanise }}"
        """)
    )
    problems = check_files([p])
    assert problems == [
        f"{p}, group 'g', rule 'Crashy', field 'annotations.description': unknown label 'platform' in "
        "'{{ $labels.platform }}'; this rule's labels: alertname, product, severity",
    ], problems
    p.write_text(p.read_text().replace("$labels.platform", "$labels.severity"))
    (problem,) = check_files([p])
    assert problem.startswith(f"{p}, group 'g', rule 'Crashy', field 'annotations.description': unknown function")
    p.write_text(p.read_text().replace("humanise", "humanize"))
    assert check_files([p]) == []
    rule = load_rules([p]).rule("Crashy")
    assert rule.render({"product": "search"}, 0.0823, 500) == {
        "summary": "search crashes 8.23%",
        "description": "page 82.3m",
    }


def test_a_metric_rule_has_no_evidence_to_name(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text(
        "groups: [{name: g, rules: [{alert: A, metric: crash_rate, window: 1h, op: '>', threshold: 0.1, "
        "annotations: {summary: '{{ $evidence.sentences | join }}'}}]}]"
    )
    (problem,) = check_files([p])
    assert "unknown evidence field 'sentences'" in problem and "only signal and burn_rate rules" in problem


# Values that exercise every branch of Prometheus' humanize functions (prefixes both ways, days, sub-second,
# negative, zero, NaN/Inf).
PROMETHEUS_VALUES = [
    "0", "1", "999", "1000", "1234567", "0.5", "0.001234", "-2500", "0.000000001", "42.42", "90", "3600.5",
    "266405", "-90", "0.25", "1e15", "1e30", "2048", "1048576", "NaN", "+Inf",
]  # fmt: skip
FUNCTIONS = ["humanize", "humanize1024", "humanizeDuration", "humanizePercentage"]


def test_humanize_functions_match_the_real_prometheus(tmp_path: Path) -> None:
    """Our renders become promtool's expected annotations: promtool (Prometheus' own template engine) agrees."""
    rules, tests = [], []
    for i, v in enumerate(PROMETHEUS_VALUES):
        # Beyond int64 Go's humanizeDuration overflows into a negative count of days: not worth copying.
        annotations = {f: f"{{{{ $value | {f} }}}}" for f in FUNCTIONS if not (v == "1e30" and f == "humanizeDuration")}
        annotations["printf"] = '{{ printf "%.2f" $value }}'
        rules.append({"alert": f"V{i}", "expr": f"vector({v})", "annotations": annotations})
        expected = {
            k: compile_template(t, [], labels=[]).render({"$value": float(v), "$labels": {}})
            for k, t in annotations.items()
        }
        tests.append(
            {"alertname": f"V{i}", "eval_time": "0m", "exp_alerts": [{"exp_labels": {}, "exp_annotations": expected}]}
        )
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]}))
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": [], "alert_rule_test": tests}],
            }
        )  # fmt: skip
    )
    r = subprocess.run(["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr
