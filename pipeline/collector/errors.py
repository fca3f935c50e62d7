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
    """What is wrong with one event of a request; ``field`` is a dotted path such as ``request.latency_ms``.

    ``item`` names the source's own item when the event was mapped from a
    standard's body (``batch[3]``, ``resourceSpans[0].scopeSpans[0].spans[2]``),
    so a client finds the span or message it sent; ``index`` is then the
    position of the mapped event in the request.
    """

    index: int
    field: str | None
    message: str
    item: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"index": self.index, "field": self.field, "message": self.message}
        if self.item is not None:
            body["item"] = self.item
        return body


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
