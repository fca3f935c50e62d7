"""The worker's pages (read API, built-in dashboards), served apart from ingestion and bounded.

A read is something anybody who reaches the web port can trigger, so it must
never delay ingestion, and never hold the worker:

* Reads run on the :class:`ReadPool`'s threads (``web_read_threads``) with the
  read client (:func:`pipeline.clickhouse.connect_another`), never on the sink's
  thread or with its client: an insert never queues behind a read.
* At most ``web_read_threads`` reads run and ``web_read_queue`` wait; one more
  is answered 503 with ``Retry-After`` at once, so a flood costs a bounded
  amount of work, not an unbounded queue.
* Every query of the read client carries ``max_execution_time``,
  ``max_result_rows`` (``result_overflow_mode=throw``) and ``max_threads=1``
  (one engine thread per read thread leaves the ingest path its share of the
  cores); a reader that loops (the backtest) is capped by its own limits.
* A read whose client went away, that outlived ``web_read_timeout_s``, or that
  is in flight when the worker stops is cancelled: its ``cancel`` event is set
  (checked between a backtest's steps) and the request is answered at once.
  Nobody waits for it - the threads are daemons, so neither SIGTERM nor the
  web server's shutdown (which waits for open handlers) waits on a read.

And only who should may ask (:class:`WebGuard`, checked before a read is queued):

* A request whose ``Host`` is not loopback, the server's own bind address or
  one of ``web_allowed_hosts`` is a 421: a page on another site that makes the
  browser call us through a rebound DNS name names its own host.
* With ``web_token`` set, every page wants ``Authorization: Bearer <token>``
  (compared in constant time), else 401. The worker refuses to start bound to
  a non-loopback address without a token (:func:`check_exposure`).
* Faust's own ``/router`` and ``/table`` views (topology, table data) are off
  (:func:`consumers.app.create_app`).
* A request aiohttp cannot parse (an over-long header) is logged as one line
  without the header's value (:func:`quiet_bad_requests`), never a traceback
  that quotes a token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import faust
from aiohttp.http_exceptions import HttpProcessingError
from clickhouse_connect.driver.client import Client

from consumers.extensions import Page, Reply
from pipeline.errors import UsageError
from pipeline.settings import WebSettings

log = logging.getLogger(__name__)

_POLL_S = 0.2  # how often a waiting handler looks whether its client left or the worker stops


def check_exposure(settings: WebSettings) -> None:
    """Refuse (UsageError, one line) a web server bound beyond loopback without a token."""
    if settings.web_port and not settings.web_on_loopback and settings.web_token is None:
        raise UsageError(
            f"PULSE_WEB_HOST={settings.web_host} is not a loopback address: set PULSE_WEB_TOKEN (a bearer token "
            "the read API and dashboards will require) or bind to 127.0.0.1"
        )


def host_name(header: str) -> str:
    """The host of a ``Host`` header, lowercase, without its port: ``[::1]:6066`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    name, sep, port = header.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else header


class WebGuard:
    """Who may use the pages: a request naming an allowed host and, when a token is set, carrying it."""

    def __init__(self, settings: WebSettings) -> None:
        self._hosts = settings.web_host_names
        token = settings.web_token
        self._expected = ("Bearer " + token.get_secret_value()).encode() if token is not None else None

    def refusal(self, headers: Mapping[str, str]) -> tuple[Reply, Mapping[str, str]] | None:
        """None when the request may go on, else the answer to give it."""
        if host_name(headers.get("Host", "")) not in self._hosts:
            return _plain(421, "misdirected request: this Host is not served here (PULSE_WEB_ALLOWED_HOSTS)")
        if self._expected is not None:
            given = headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, self._expected):
                return _plain(
                    401, "unauthorized: send Authorization: Bearer <PULSE_WEB_TOKEN>", {"WWW-Authenticate": "Bearer"}
                )
        return None


class _BadRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback that quotes the offending header - a bearer
    token included. Such a record becomes one line naming the error class and status, without the value."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg = "event=bad_http_request remote=%s status=%d error=%s"
            record.args = (remote, exc.code, type(exc).__name__)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_bad_requests() -> None:
    """Install :class:`_BadRequestFilter` on aiohttp's server logger (idempotent)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestFilter) for f in server_log.filters):
        server_log.addFilter(_BadRequestFilter())


def read_limits(timeout_s: float, max_rows: int) -> dict[str, object]:
    """The server-side settings every read query carries."""
    return {
        "max_execution_time": max(1, math.ceil(timeout_s)),
        "max_result_rows": max_rows,
        "result_overflow_mode": "throw",
        "max_threads": 1,
    }


class ReadsBusy(Exception):
    """Every read thread is busy and the queue is full."""


class _Job:
    __slots__ = ("args", "cancel", "fn", "future", "loop")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.args = args
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        self.cancel = threading.Event()


class ReadPool:
    """A few daemon threads running reads with the read client, behind a bounded queue.

    Not a ``ThreadPoolExecutor``: its threads are joined when the interpreter
    exits, so a read in flight would hold a stopping worker.
    """

    def __init__(self, client: Client, threads: int, queue_limit: int) -> None:
        self.client = client
        self._jobs: queue.Queue[_Job] = queue.Queue()  # bounded by submit(): running + waiting
        self._queue_limit = queue_limit
        self._admitted = 0
        self._lock = threading.Lock()
        self._threads = threads
        for i in range(threads):
            threading.Thread(target=self._work, name=f"read-{i}", daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> tuple[asyncio.Future[Any], threading.Event]:
        """Queue ``fn(client, *args, cancel)``; its future and cancel event. Raises ReadsBusy when full."""
        job = _Job(fn, args, asyncio.get_running_loop())
        with self._lock:
            if self._admitted >= self._threads + self._queue_limit:
                raise ReadsBusy
            self._admitted += 1  # running or waiting, until its thread is done with it
        self._jobs.put_nowait(job)
        return job.future, job.cancel

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job.cancel.is_set():  # abandoned while it waited
                    continue
                try:
                    result = job.fn(self.client, *job.args, job.cancel)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                    job.loop.call_soon_threadsafe(_settle, job.future, None, exc)
                else:
                    job.loop.call_soon_threadsafe(_settle, job.future, result, None)
            finally:
                with self._lock:
                    self._admitted -= 1

    def close(self) -> None:
        """Cancel the reads still waiting; the threads are daemons and are not waited for."""
        while True:
            try:
                self._jobs.get_nowait().cancel.set()
            except queue.Empty:
                return


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the request gave up on it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _plain(status: int, text: str, headers: Mapping[str, str] | None = None) -> tuple[Reply, Mapping[str, str]]:
    return Reply(status, "text/plain; charset=utf-8", text + "\n"), headers or {}


async def serve_read(
    pool: ReadPool,
    page: Page,
    request: Any,
    params: Mapping[str, str],
    timeout_s: float,
    stopping: Callable[[], bool],
) -> tuple[Reply, Mapping[str, str]]:
    """Run one page on the read pool; its reply and extra headers.

    Waits at most ``timeout_s``, and gives up as soon as the client has gone
    or the worker stops; in each case the read's cancel event is set.
    """
    try:
        future, cancel = pool.submit(page.render, params, dict(request.query))
    except ReadsBusy:
        return _plain(503, "busy: too many reads in flight, retry shortly", {"Retry-After": "1"})
    deadline = time.monotonic() + timeout_s
    try:
        while not future.done():
            left = deadline - time.monotonic()
            if left <= 0:
                cancel.set()
                log.warning("event=read_timeout path=%s seconds=%.1f", page.path, timeout_s)
                return _plain(503, f"the read took longer than {timeout_s:g}s (PULSE_WEB_READ_TIMEOUT_S)")
            if stopping():
                cancel.set()
                return _plain(503, "the worker is stopping")
            transport = request.transport
            if transport is None or transport.is_closing():
                cancel.set()
                log.info("event=read_abandoned path=%s", page.path)
                return _plain(499, "client closed the request")
            await asyncio.wait({future}, timeout=min(_POLL_S, left))
        return future.result(), {}
    except asyncio.CancelledError:
        cancel.set()
        raise


def mount(app: faust.App, pool: ReadPool, guard: WebGuard, page: Page, timeout_s: float) -> None:
    """Serve ``page`` on the app's web server, behind ``guard``, on the read pool."""

    def stopping() -> bool:
        return bool(app.should_stop)

    async def get(view: faust.web.View, request: faust.web.Request, **params: str) -> faust.web.Response:
        refused = guard.refusal(request.headers)
        if refused is not None:
            log.info("event=page_refused path=%s status=%d", page.path, refused[0].status)
        try:
            reply, headers = refused or await serve_read(pool, page, request, params, timeout_s, stopping)
        except Exception as exc:  # noqa: BLE001 - one failing page answers 500, the worker goes on
            log.exception("event=page_failed path=%s", page.path)
            reply, headers = _plain(500, f"internal error: {type(exc).__name__}")
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        return view.bytes(body, status=reply.status, headers={"Content-Type": reply.content_type, **headers})

    get.__name__ = "page_" + "".join(c if c.isalnum() else "_" for c in page.path)
    app.page(page.path, name=get.__name__)(get)
