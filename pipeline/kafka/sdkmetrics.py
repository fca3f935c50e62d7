"""Prometheus counters of the emitter SDK, when the service has ``prometheus_client`` installed.

The SDK's base install does not depend on it (an emitting service installs
pydantic and kafka-python only), and :mod:`pipeline.telemetry` is the
worker's own registry, so these counters go to ``prometheus_client``'s
default registry: the one a service that exports metrics already serves.
Without the library every function here is a no-op.
"""

from __future__ import annotations

import contextlib
from typing import Any

_HELP = {
    "dropped": "Events the emitter dropped because its queue was full",
    "failed": "Events the emitter could not hand to Kafka or that Kafka did not acknowledge",
    "invalid": "Events send() refused because they failed validation",
}
_COUNTERS: dict[str, Any] = {}

try:
    from prometheus_client import Counter
except ImportError:  # an emit-only install
    pass
else:
    for _kind, _help in _HELP.items():
        with contextlib.suppress(ValueError):  # registered already (the module was reloaded): work on without it
            _COUNTERS[_kind] = Counter(f"pulse_emitter_{_kind}_total", _help)


def count(kind: str, n: int = 1) -> None:
    """Add ``n`` to ``pulse_emitter_<kind>_total`` (dropped, failed, invalid) when prometheus_client is there."""
    counter = _COUNTERS.get(kind)
    if counter is not None:
        counter.inc(n)
