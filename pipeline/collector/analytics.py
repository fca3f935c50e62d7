"""The event-name mapping Segment and PostHog share: which family a named product-analytics event belongs to.

Both standards send named events with free properties; this module decides
what a name becomes (README, "Speaking the standards"):

* a name in the mapping's ``conversions`` (default: the Segment e-commerce
  spec's ``Order Completed``) -> ``conversion``: goal = the name, value from
  ``revenue``, ``total`` or ``value``, currency from ``currency`` (default USD);
* a name in the mapping's ``feedback`` (default: PostHog's ``survey sent``,
  score in ``$survey_response``, NPS) -> ``feedback``;
* a name in ``ignore`` -> nothing (counted as unmapped);
* any other name -> ``feature_used``: feature = the name, ``success`` and
  ``duration_ms`` from properties of those names when present.

Goal and feature names are identifiers (:func:`.intake.identifier`):
``Order Completed`` is stored as ``Order_Completed``, the name as sent stays
in ``properties.event_name``.

Page and screen views are ``feature_used`` with feature ``page_view`` /
``screen_view``: they are uses of the product, not sessions (a session
counted per page would inflate every rate built on sessions); the page's name
and URL stay in ``properties``.
"""

from __future__ import annotations

from typing import Any

from pipeline.collector.intake import identifier
from pipeline.collector.mapping import Mapping

PAGE_VIEW = "page_view"
SCREEN_VIEW = "screen_view"


def _number(value: Any) -> Any:
    """A numeric property as a float (a numeric string too); anything else as it is, for the model to refuse."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def typed_fields(name: str, properties: dict[str, Any], mapping: Mapping) -> dict[str, Any] | None:
    """The ``type`` and type-specific fields of a named event, or None when the mapping ignores the name."""
    if name in mapping.ignore:
        return None
    if name in mapping.conversions:
        value = next((properties[k] for k in ("revenue", "total", "value") if properties.get(k) is not None), 0.0)
        currency = properties.get("currency")
        return {
            "type": "conversion",
            "goal": identifier(name, 128),
            "value": _number(value),
            "currency": currency.upper() if isinstance(currency, str) else "USD",
        }
    rule = mapping.feedback.get(name)
    if rule is not None:
        score = _number(properties.get(rule.score))
        if isinstance(score, float) and score.is_integer():
            score = int(score)
        return {"type": "feedback", "kind": rule.kind, "score": score}
    fields: dict[str, Any] = {"type": "feature_used", "feature": identifier(name, 128)}
    if isinstance(properties.get("success"), bool):
        fields["success"] = properties["success"]
    if isinstance(properties.get("duration_ms"), int | float):
        fields["duration_ms"] = properties["duration_ms"]
    return fields
