"""Exceptions the alerts package raises on purpose (all derive from :class:`pipeline.errors.PulseError`)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.errors import PulseError


class AlertsError(PulseError):
    """Root of the alerts package's own refusals."""


class RuleFileError(AlertsError):
    """One or more rule files are invalid; ``problems`` holds one line per problem (file, group, rule, field)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid alert rules:\n" + "\n".join(self.problems))


class RuleTestFileError(AlertsError):
    """A rule unit-test file cannot be read (bad YAML, unknown fields, bad series notation)."""
