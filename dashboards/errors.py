"""Exceptions the dashboards package raises on purpose."""

from __future__ import annotations

from pipeline.errors import PulseError


class DashboardError(PulseError):
    """A dashboard definition that cannot be rendered (overlapping panels, a macro the plugin would misread, ...)."""


class NotFound(DashboardError):
    """A page, product or version the built-in view does not know (answered with 404)."""
