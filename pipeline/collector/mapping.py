"""How the standards' routes map what they receive to our events: the defaults, and the YAML file that overrides them.

One :class:`Mapping` serves every route (OTLP, Sentry, Segment, PostHog). Its defaults
are the documented mapping of the README section "Speaking the standards"; a
file named by ``PULSE_COLLECTOR_MAPPING_FILE`` replaces any of them::

    products:              # OTLP service.name -> product (default: service.name itself)
      checkout-api: checkout
    conversions:           # event names that are conversions (value and currency from their properties)
      - Order Completed
      - Subscription Started
    feedback:              # event names that carry a survey score
      survey sent: {score: $survey_response, kind: nps}
      CSAT Submitted: {score: rating, kind: csat}
    ignore:                # event names counted as unmapped instead of becoming feature_used
      - $feature_flag_called

A file with an unknown key or a wrong value fails at start with one line
naming it, like every other setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.collector.errors import CollectorError

UNKNOWN_VERSION = "unknown"  # the version of an event whose SDK sent none (the field is required)
ANONYMOUS_USER = "anonymous"  # the user of a span that names none (the field is required)


class FeedbackRule(BaseModel):
    """Which property of a survey event holds the score, and whether it is NPS (0-10) or CSAT (1-5)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: str = Field(min_length=1)
    kind: Literal["nps", "csat"] = "nps"


class Mapping(BaseModel):
    """The mapping of the standards' routes; every field has the documented default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    products: dict[str, str] = Field(default_factory=dict)
    conversions: tuple[str, ...] = ("Order Completed",)
    feedback: dict[str, FeedbackRule] = Field(
        default_factory=lambda: {"survey sent": FeedbackRule(score="$survey_response", kind="nps")}
    )
    ignore: tuple[str, ...] = ()

    def product_of_service(self, service_name: str) -> str:
        return self.products.get(service_name, service_name)


class MappingFileError(CollectorError, ValueError):
    """The mapping file is missing, not YAML, or not a mapping (the message names the file and the problem).

    It is a setting's problem: ``problems`` makes the CLI print it as one line and exit 2, like the others.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problems = [message]


def load_mapping(path: Path | None) -> Mapping:
    """The mapping in ``path``, or the defaults when no file is configured."""
    if path is None:
        return Mapping()
    import yaml  # the collector extra carries PyYAML; only a configured file needs it

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingFileError(f"collector_mapping_file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise MappingFileError(f"collector_mapping_file {path}: not YAML ({str(exc).splitlines()[0]})") from None
    try:
        return Mapping.model_validate(doc or {})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the file"
        raise MappingFileError(f"collector_mapping_file {path}: {where}: {first['msg']}") from None
