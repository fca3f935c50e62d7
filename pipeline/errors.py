"""The project's root exception.

Every exception ProductPulse raises on purpose derives from :class:`PulseError`,
so a caller can tell the pipeline's own refusals (a bad event, a locked store,
an unknown metric) from a bug. Each package defines its subclasses beside its
code: :class:`~pipeline.kafka.emitter.InvalidEvent`,
:class:`~pipeline.clickhouse.client.ClickHouseLocked`,
:class:`~pipeline.catalog.metrics.UnknownMetric`,
:class:`~pipeline.collector.errors.Rejected`, ...
"""

from __future__ import annotations


class PulseError(Exception):
    """Root of every exception ProductPulse raises on purpose."""


class UsageError(PulseError):
    """A command was asked for something it refuses to do as configured; the message says what to change."""
