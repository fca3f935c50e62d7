"""The emitter's typed methods: one per event type, shared by :class:`Emitter` and :class:`AsyncEmitter`.

Each builds the event's body from its arguments and the emitter's defaults
(product, version, environment, platform) and hands it to ``_submit``, which
never blocks: the helpers are plain methods on the async emitter too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pipeline.events import Event


class TypedEvents:
    """Typed constructors for every event type; subclasses say what ``_submit`` does with the body."""

    product: str | None
    version: str | None
    environment: str | None
    platform: str | None

    def _submit(self, body: dict[str, Any]) -> Event | None:
        raise NotImplementedError

    # A field left at None is left out of the event, which then gets its default from the table in
    # pipeline.schema (no default is repeated here); environment and platform fall back to the emitter's.
    def _event(self, type_: str, user_id: str, fields: dict[str, Any]) -> Event | None:
        body: dict[str, Any] = {
            "type": type_,
            "product": fields.pop("product", None) or self.product,
            "version": fields.pop("version", None) or self.version,
            "ts": fields.pop("ts", None) or datetime.now(UTC),
            "user_id": user_id,
        }
        optional = {
            "environment": fields.pop("environment", None) or self.environment,
            "platform": fields.pop("platform", None) or self.platform,
            **fields,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self._submit(body)

    def session_started(self, user_id: str, session_id: str, **kw: Any) -> Event | None:
        return self._event("session_started", user_id, {"session_id": session_id, **kw})

    def session_ended(
        self,
        user_id: str,
        session_id: str,
        status: str = "ok",  # the SDK's own default (the wire requires a status)
        errors: int | None = None,
        duration_ms: float | None = None,
        **kw: Any,
    ) -> Event | None:
        fields = {"session_id": session_id, "status": status, "errors": errors, "duration_ms": duration_ms}
        return self._event("session_ended", user_id, {**fields, **kw})

    def feature_used(
        self, user_id: str, feature: str, success: bool | None = None, duration_ms: float | None = None, **kw: Any
    ) -> Event | None:
        fields = {"feature": feature, "success": success, "duration_ms": duration_ms}
        return self._event("feature_used", user_id, {**fields, **kw})

    def request(
        self,
        user_id: str,
        operation: str,
        latency_ms: float,
        status_code: int = 200,  # the SDK's own default: a measured request was answered (the wire's 0 is unknown)
        error: str | None = None,
        **kw: Any,
    ) -> Event | None:
        fields = {"operation": operation, "latency_ms": latency_ms, "status_code": status_code, "error": error}
        return self._event("request", user_id, {**fields, **kw})

    def error(self, user_id: str, kind: str, handled: bool | None = None, **kw: Any) -> Event | None:
        return self._event("error", user_id, {"kind": kind, "handled": handled, **kw})

    def conversion(
        self, user_id: str, goal: str, value: float | None = None, currency: str | None = None, **kw: Any
    ) -> Event | None:
        return self._event("conversion", user_id, {"goal": goal, "value": value, "currency": currency, **kw})

    def feedback(self, user_id: str, kind: str, score: int, **kw: Any) -> Event | None:
        return self._event("feedback", user_id, {"kind": kind, "score": score, **kw})

    def support_ticket(
        self, user_id: str, ticket_id: str, action: str, severity: str | None = None, **kw: Any
    ) -> Event | None:
        fields = {"ticket_id": ticket_id, "action": action, "severity": severity}
        return self._event("support_ticket", user_id, {**fields, **kw})
