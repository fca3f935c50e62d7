"""What other rooms hand the worker: leader-only timers and read-only web pages over its store.

The worker hosts everything that needs the store in embedded mode (one chDB
process per folder), but it knows nothing of alerts or dashboards: the worker's
use case (:mod:`pipeline.usecases.worker`) builds these objects from those rooms
and passes them to :func:`consumers.app.run_worker`. Both run their ClickHouse work on the sink's
one executor thread, never on the event loop, sharing the worker's client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class LeaderTimer:
    """A periodic job that only the partition leader runs (so exactly one worker of the group runs it)."""

    name: str
    interval_s: float
    run: Callable[[Client], object]  # blocking; runs on the ClickHouse thread; an exception is logged, not fatal


class Reply(NamedTuple):
    status: int
    content_type: str
    body: str | bytes


@dataclass(frozen=True)
class Page:
    """A GET route on the worker's web server: ``render(client, path_params, query)`` runs on the ClickHouse thread."""

    path: str  # aiohttp pattern, e.g. "/products/{product}"
    render: Callable[[Client, Mapping[str, str], Mapping[str, str]], Reply]
