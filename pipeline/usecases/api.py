"""What the worker serves besides ingesting - the read-only API and the built-in dashboards - and the
client side of that API.

Embedded chDB serves one process: while a worker runs on it, ``pulse metrics
query``, ``pulse alerts status``, ``pulse scorecard`` and the other read
commands cannot open the folder. So the worker serves the same answers under
``/api/{name}`` on its web server (``PULSE_WEB_PORT``, loopback by default),
one route per reader in :data:`~pipeline.usecases.reads.READERS`, and each read
command calls :func:`read` - which opens the store when it is free and asks the
worker when it is not. Both paths run the same reader, so they answer alike.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from threading import Event
from typing import TYPE_CHECKING, Any

from pipeline import clickhouse
from pipeline.errors import PulseError
from pipeline.settings import Settings
from pipeline.usecases.reads import READERS, Reader

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from consumers.extensions import Page


class WorkerUnreachable(PulseError):
    """The store is locked by a worker whose read API does not answer."""


def read(settings: Settings, name: str, params: Mapping[str, str]) -> Any:
    """The answer of the reader ``name`` (a key of ``READERS``): from the store when this process may open it,
    else from the worker's ``/api/{name}``."""
    reader = READERS[name]
    try:
        client = clickhouse.connect(settings)
    except clickhouse.ClickHouseLocked:
        return _ask_worker(settings, name, params)
    try:
        return reader(client, settings, params)
    finally:
        client.close()
        clickhouse.release(settings)


def _ask_worker(settings: Settings, name: str, params: Mapping[str, str]) -> Any:
    url = f"{settings.web_url}/api/{name}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url)
    if settings.web_token is not None:
        request.add_header("Authorization", f"Bearer {settings.web_token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise WorkerUnreachable(f"the worker answered {exc.code} at {url}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise WorkerUnreachable(
            f"the embedded store is in use by a worker, and its read API at {url} does not answer ({exc}); "
            "set PULSE_WEB_PORT to that worker's web port"
        ) from None


def worker_pages(settings: Settings) -> list[Page]:
    """Everything the worker serves on its web port: the read API and the built-in dashboards."""
    return api_pages(settings) + dashboard_pages(settings)


def api_pages(settings: Settings, readers: Mapping[str, Reader] = READERS) -> list[Page]:
    """The worker's ``/api/{name}`` routes, one per reader."""
    from consumers.extensions import Page, Reply

    def page(reader: Reader) -> Callable[[Client, Mapping[str, str], Mapping[str, str], Event], Reply]:
        def render(client: Client, _: Mapping[str, str], query: Mapping[str, str], cancel: Event) -> Reply:
            try:
                body = json.dumps(json_safe(reader(client, settings, query, cancel)), default=str, allow_nan=False)
            except (PulseError, ValueError, KeyError, OverflowError) as exc:  # a bad parameter: the client's to fix
                return Reply(400, "application/json", json.dumps({"error": str(exc) or type(exc).__name__}))
            return Reply(200, "application/json", body)

        return render

    return [Page(f"/api/{name}", page(reader)) for name, reader in readers.items()]


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None: JSON has no NaN, and a bare ``NaN`` makes
    the answer unreadable to every strict parser (browsers, ``jq``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dashboard_pages(settings: Settings) -> list[Page]:
    """The built-in dashboards (``/``, ``/products/{product}``, ``/releases``) as worker pages."""
    from urllib.parse import quote

    from consumers.extensions import Page, Reply
    from dashboards import render_page

    def page(
        path_of: Callable[[Mapping[str, str]], str],
    ) -> Callable[[Client, Mapping[str, str], Mapping[str, str], Event], Reply]:
        def render(client: Client, params: Mapping[str, str], query: Mapping[str, str], _: Event) -> Reply:
            now = datetime.now(UTC)
            return Reply(*render_page(path_of(params), query, client, settings.clickhouse_database, now))

        return render

    return [
        Page("/", page(lambda _: "/")),
        Page("/products/{product}", page(lambda p: "/products/" + quote(p["product"], safe=""))),
        Page("/releases", page(lambda _: "/releases")),
    ]
