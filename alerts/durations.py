"""Durations in rule files: the project's one grammar, :mod:`pipeline.durations` (the command line's too)."""

from __future__ import annotations

from pipeline.durations import format_duration, parse_duration

__all__ = ["format_duration", "parse_duration"]
