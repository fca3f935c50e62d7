"""What a notifier sends: one alert as Alertmanager's API v2 shapes it, and where it links to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from alerts.notify.sanitize import clean_annotations, clean_labels
from pipeline import dashboard_uids


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Notification:
    """One alert to deliver: ``ends_at`` is in the future while it fires and its resolution time once resolved."""

    fingerprint: str
    status: str  # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    generator_url: str

    def to_alertmanager(self) -> dict[str, Any]:
        """The body element of ``POST /api/v2/alerts`` (postableAlert): labels and annotations as printable text."""
        return {
            "labels": clean_labels(self.labels),
            "annotations": clean_annotations(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "generatorURL": self.generator_url,
        }


class Notifier(Protocol):
    name: str

    def notify(self, notifications: Sequence[Notification]) -> bool:
        """Queue a delivery; False when it had to be dropped (queue full). Never blocks, never raises."""
        ...

    def close(self, timeout_s: float = 5.0) -> None: ...


def generator_url(labels: Mapping[str, str], dashboard_url: str, grafana_url: str | None = None) -> str:
    """The product's detail dashboard, with the product (and version, when labelled) selected.

    Grafana's product dashboard (:data:`pipeline.dashboard_uids.PRODUCT`) when ``grafana_url`` is set, else the
    built-in one.
    """
    product = labels.get("product", "")
    version = labels.get("version")
    if grafana_url:
        params = [("var-product", product)] + ([("var-version", version)] if version else [])
        return f"{grafana_url.rstrip('/')}/d/{dashboard_uids.PRODUCT}?{urlencode(params)}"
    base = f"{dashboard_url.rstrip('/')}/products/{quote(product, safe='')}"
    return f"{base}?{urlencode({'version': version})}" if version else base
