"""What the collector answers when it refuses a request: :class:`Rejected` and the per-event :class:`EventError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PulseError


class CollectorError(PulseError):
    """Root of the collector's exceptions."""


@dataclass(frozen=True, slots=True)
class EventError:
    """What is wrong with one event of a request; ``field`` is a dotted path such as ``request.latency_ms``."""

    index: int
    field: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class Rejected(CollectorError):
    """A request refused as a whole: the HTTP status, a message for the client and a short code for the log."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        details: Sequence[EventError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reason = reason
        self.details = list(details)
        self.headers = headers or {}
