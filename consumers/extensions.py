"""What other rooms hand the worker: leader-only timers and read-only web pages over its store.

The worker hosts everything that needs the store in embedded mode (one chDB
process per folder), but it knows nothing of alerts or dashboards: the worker's
use case (:mod:`pipeline.usecases.worker`) builds these objects from those rooms
and passes them to :func:`consumers.app.run_worker`. Neither runs on the event loop, nor on the sink's
thread: timers run on :class:`LeaderJobs`' thread with a client of their own (the evaluator writes alert
state), so inserts never wait while the judge computes; pages are reads a user triggers, so they run on the
read pool's threads with the read client, whose every query is bounded (:mod:`consumers.web`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from clickhouse_connect.driver.client import Client


@dataclass(frozen=True)
class LeaderTimer:
    """A periodic job that only the partition leader runs (so exactly one worker of the group runs it)."""

    name: str
    interval_s: float
    run: Callable[[Client], object]  # blocking; runs on the leader jobs' thread; an exception is logged, not fatal
    # Called on the event loop when this worker becomes the leader, before its first run of that term: state
    # the job keeps in memory may be stale, another worker led meanwhile (and wrote to the store).
    on_elected: Callable[[], None] | None = None


class LeaderJobs:
    """The thread and client the leader's timers run on, apart from the sink's: one job at a time.

    On the sink's thread a health job (scorecards and release verdicts: seconds on a big store) held every
    insert back for as long as it computed. Here only the GIL is shared; the engine runs both side by side.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leader-jobs")

    async def run(self, job: Callable[[Client], object]) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job, self.client)

    def close(self) -> None:
        """Wait for the job in flight (its writes are the store's), then close the client."""
        self._executor.shutdown(wait=True)
        self.client.close()


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
