"""The standards' mapping: the defaults, the mapping file and its errors, the name -> family rules (pure)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.collector.analytics import typed_fields
from pipeline.collector.intake import identifier, operation_name
from pipeline.collector.mapping import Mapping, MappingFileError, load_mapping
from pipeline.collector.posthog import map_events
from pipeline.collector.segment import map_messages

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_defaults_without_a_file():
    m = load_mapping(None)
    assert m.conversions == ("Order Completed",)
    assert m.feedback["survey sent"].score == "$survey_response"
    assert m.product_of_service("checkout-api") == "checkout-api"


def test_a_file_overrides_and_its_mistakes_name_the_file_and_the_key(tmp_path: Path):
    good = tmp_path / "m.yaml"
    good.write_text("products: {checkout-api: checkout}\nconversions: [Trial Started]\n"
                    "feedback: {CSAT: {score: rating, kind: csat}}\nignore: [noise]\n")  # fmt: skip
    m = load_mapping(good)
    assert m.product_of_service("checkout-api") == "checkout"
    assert typed_fields("Order Completed", {}, m) == {"type": "feature_used", "feature": "Order_Completed"}
    assert typed_fields("Trial Started", {"total": "12.5"}, m)["value"] == 12.5
    assert typed_fields("CSAT", {"rating": 4}, m) == {"type": "feedback", "kind": "csat", "score": 4}
    assert typed_fields("noise", {}, m) is None

    for text, needle in [("conversion: [x]\n", "conversion"), ("feedback: {a: {kind: nps}}\n", "feedback.a.score"),
                         ("products: [", "not YAML")]:  # fmt: skip
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(MappingFileError, match=needle) as info:
            load_mapping(bad)
        assert str(bad) in str(info.value)
    with pytest.raises(MappingFileError, match="missing.yaml"):
        load_mapping(tmp_path / "missing.yaml")


def test_unmapped_calls_are_counted_not_events():
    intake = map_messages(
        [{"type": "identify", "userId": "u"}, {"type": "alias", "userId": "u"}, {"type": "nonsense", "userId": "u"},
         {"type": "track", "event": "x", "userId": "u", "properties": {"success": False}}],
        "checkout", Mapping(), NOW,
    )  # fmt: skip
    assert dict(intake.unmapped) == {"identify": 1, "alias": 1, "unknown_type": 1}
    assert [(e["type"], e["success"]) for e in intake.items] == [("feature_used", False)]
    assert intake.labels == ["batch[3]"] and intake.refused == 0  # Segment has no way to report a refusal


def test_posthog_key_is_not_stored_and_a_multi_product_key_takes_the_product_from_the_event():
    intake = map_events([{"event": "x", "distinct_id": "u", "properties": {"token": "secret", "product": "search"}}],
                        "", Mapping(), NOW)  # fmt: skip
    [event] = intake.items
    assert event["product"] == "search" and "token" not in event["properties"]
    assert event["ts"] == NOW.isoformat()  # no timestamp: the collector's clock


def test_pulse_collector_refuses_a_bad_mapping_file_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli.main import main

    bad = tmp_path / "mapping.yaml"
    bad.write_text("conversion: [Order Completed]\n")  # a typo of `conversions`
    monkeypatch.setenv("PULSE_COLLECTOR_WRITE_KEYS", "checkout=k1")
    monkeypatch.setenv("PULSE_COLLECTOR_MAPPING_FILE", str(bad))
    assert main(["collector", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"pulse: collector_mapping_file {bad}: conversion: Extra inputs are not permitted"]


# The identifier charset of the event contract (issue 17, item 3), as pipeline/schema.py spells it there.
_CHARS = "A-Za-z0-9._:/@+"
IDENTIFIER = re.compile(rf"[A-Za-z0-9][{_CHARS}-]*")
OPERATION = re.compile(rf"[A-Za-z0-9][{_CHARS}{{}}*-]*(?: [{_CHARS}{{}}*-]+)*")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Order Completed", "Order_Completed"), ("$autocapture", "autocapture"), ("2.3.0 (145)", "2.3.0_145_"),
     ("release/2024-11", "release/2024-11"), ("café ☕", "caf_"), ("'; DROP TABLE x; --", "DROP_TABLE_x_--"),
     ("a\nb", "a_b"), (42, "42")],
)  # fmt: skip
def test_source_names_become_identifiers_of_the_contract(raw: object, expected: str) -> None:
    assert identifier(raw) == expected
    assert IDENTIFIER.fullmatch(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("GET /items/{id}", "GET /items/{id}"), ("GET  /a\t/b ", "GET /a /b"), ("/health", "health"),
     ("SELECT \"users\"", "SELECT _users_")],
)  # fmt: skip
def test_span_names_become_operations_of_the_contract(raw: str, expected: str) -> None:
    assert operation_name(raw) == expected
    assert OPERATION.fullmatch(expected)
