"""Pages carry the numbers: annotations render the sample's evidence (the judge's sentences), the evidence
fields a template may name are the ones the real sources fill, and every shipped rule links a runbook."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from alerts import regression, scorecard
from alerts.regression import Verdict
from alerts.rules import EVIDENCE_FIELDS, load_rules, shipped_rules_dir, template_scope
from alerts.scorecard import DimensionScore, Scorecard
from alerts.sources import burn_sample
from alerts.statemachine import advance
from alerts.template import compile_template

ROOT = shipped_rules_dir().parents[1]
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def verdict(signal: str, candidate: float, baseline: float, severe: bool) -> Verdict:
    return Verdict(
        product="search", version="2.0", baseline_version="1.9", released_at=T0, bake_s=7200, signal=signal,
        candidate_value=candidate, baseline_value=baseline, candidate_volume=850, baseline_volume=12000,
        test="msprt", p_value=1e-6, verdict="regression", severe=severe,
        baseline_window="2026-02-22T12:00:00+00:00/2026-03-01T12:00:00+00:00", comparison="canary",
        baseline_mix=(("1.9", 0.93), ("1.8", 0.07)), bounds=(3.1, 8.4), share=0.2, details={"alpha": 0.01},
    )  # fmt: skip


def test_the_regression_page_shows_the_judges_sentences() -> None:
    rules = load_rules([shipped_rules_dir() / "product.yaml"])
    rule = rules.rule("ReleaseRegression")
    (sample,) = regression.samples([verdict("crash_rate", 0.082, 0.016, True), verdict("latency", 416, 224, True)])
    alerts: dict = {}
    advance(rule, alerts, [sample], T0)
    (alert,) = alerts.values()
    crash, latency = sample.evidence["sentences"]
    assert "8.20% on 2.0 vs 1.60% on 1.9 (93%)" in crash and "416ms" in latency  # the judge's own words
    description = alert.annotations["description"]
    assert crash in description and latency in description, description
    assert "canary" in description and "850 sessions" in description
    assert "`pulse releases` shows every signal" not in description
    assert alert.annotations["summary"] == "search 2.0 regressed against 1.9: crash_rate, latency"
    assert alert.annotations["runbook_url"] == "docs/runbooks.md#releaseregression"


def test_template_evidence_fields_are_the_ones_the_sources_fill() -> None:
    (reg,) = regression.samples([verdict("crash_rate", 0.082, 0.016, True)])
    assert set(reg.evidence) == set(EVIDENCE_FIELDS["release_regression"])
    dim = DimensionScore("performance", 40.0, 60.0, True, 10, -0.5)
    card = Scorecard("search", T0, None, {"performance": dim}, dim, True, ({"kind": "x"},))
    red = scorecard.sample(card)
    declared = set(EVIDENCE_FIELDS["redesign_candidate"])
    # "sentences" is being added to the scorecard's sample; until then a template naming it renders empty.
    assert set(red.evidence) <= declared and declared - set(red.evidence) <= {"sentences"}
    rule = load_rules([shipped_rules_dir() / "slo.yaml"]).rule("CrashFreeBudgetFastBurn")
    burn = burn_sample(rule.rule, {"product": "search"}, 0.3, 0.4, 500)
    assert set(burn.evidence) == set(EVIDENCE_FIELDS["burn_rate"])


def test_a_redesign_ticket_renders_without_sentences_and_with_them() -> None:
    rule = load_rules([shipped_rules_dir() / "product.yaml"]).rule("RedesignCandidate")
    evidence = {"dimensions_below_floor": ["performance", "post_launch_support"], "composite": 42.5}
    without = rule.render({"product": "feed"}, 1.0, math.inf, evidence)["description"]
    assert "below floor performance, post_launch_support, composite 42.5" in without and not without.endswith(" ")
    with_ = rule.render({"product": "feed"}, 1.0, math.inf, {**evidence, "sentences": ["p95 rose from 200 to 600 ms"]})
    assert with_["description"].endswith("trends. p95 rose from 200 to 600 ms")


def test_evidence_also_reaches_a_burn_rate_page() -> None:
    rule = load_rules([shipped_rules_dir() / "slo.yaml"]).rule("CrashFreeBudgetFastBurn")
    rendered = rule.render({"product": "x"}, 20.0, 500, {"burn_long": 20.0, "burn_short": 31.5})
    assert rendered["runbook_url"] == "docs/runbooks.md#crashfreebudgetfastburn"
    t = compile_template("{{ $evidence.burn_short | humanize }}x", template_scope(rule.rule))
    assert t.render(rule.variables({"product": "x"}, 20.0, 500, {"burn_short": 31.5})) == "31.5x"


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_shipped_rule_links_a_runbook_section_that_exists() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text()
    sections = {slug(m.group(1)): body for m, body in zip(
        re.finditer(r"^## (.+)$", text, re.M), re.split(r"^## .+$", text, flags=re.M)[1:], strict=True
    )}  # fmt: skip
    rules = load_rules([shipped_rules_dir()]).rules
    assert len(rules) >= 7
    for r in rules:
        url = r.rule.annotations.get("runbook_url")
        assert url is not None, f"{r.name} has no runbook_url"
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md" and anchor in sections, (r.name, url)
        body = sections[anchor]
        for part in ("**What it means.**", "**First checks.**", "**Mitigate.**"):
            assert part in body, (r.name, part)
