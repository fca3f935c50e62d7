"""What other rooms hand the worker: leader-only timers and read-only web pages over its store.

The worker hosts everything that needs the store in embedded mode (one chDB
process per folder), but it knows nothing of alerts or dashboards: the worker's
use case (:mod:`pipeline.usecases.worker`) builds these objects from those rooms
and passes them to :func:`consumers.app.run_worker`. Neither runs on the event loop. Timers run on the
sink's thread with the worker's client (the evaluator writes alert state); pages are reads a user
triggers, so they run apart from ingestion on the read pool's threads with the read client, whose every
query is bounded (:mod:`consumers.web`).
"""

from __future__ import annotations

import threading
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
    # Called on the event loop when this worker becomes the leader, before its first run of that term: state
    # the job keeps in memory may be stale, another worker led meanwhile (and wrote to the store).
    on_elected: Callable[[], None] | None = None


class Reply(NamedTuple):
    status: int
    content_type: str
    body: str | bytes


@dataclass(frozen=True)
class Page:
    """A GET route on the worker's web server: ``render(client, path_params, query, cancel)`` runs on a read
    thread with the read client.

    ``cancel`` is set when the client went away, the read outlived ``web_read_timeout_s`` or the worker stops:
    a render that loops (a backtest) checks it between steps and gives up; each query is bounded by the
    read client's ``max_execution_time`` anyway.
    """

    path: str  # aiohttp pattern, e.g. "/products/{product}"
    render: Callable[[Client, Mapping[str, str], Mapping[str, str], threading.Event], Reply]
