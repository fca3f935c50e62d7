"""Open the ClickHouse client: a server over HTTP(S), or chDB embedded in this process.

Both go through ``clickhouse_connect.get_client(dsn=...)``, so the rest of the
code has one path. Embedded chDB keeps its data in one folder that only one
process may open: :func:`connect` takes an exclusive lock beside the folder and
fails with :class:`ClickHouseLocked` and a plain explanation, not a lock error
from deep inside the engine. Open it once per process and share the client.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from pipeline.errors import PulseError
from pipeline.settings import StoreSettings

_LOCKS: dict[Path, IO[str]] = {}


class ClickHouseLocked(PulseError, RuntimeError):
    """The embedded ClickHouse folder is held by another process."""


def connect(settings: StoreSettings) -> Client:
    """A client for the configured ClickHouse; embedded chDB is locked to this process."""
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        folder = Path(url.removeprefix("chdb://"))
        folder.mkdir(parents=True, exist_ok=True)
        _lock(folder)
        return clickhouse_connect.get_client(dsn=url)
    return clickhouse_connect.get_client(dsn=_server_dsn(url, settings.clickhouse_database))


def _server_dsn(url: str, database: str) -> str:
    """A server DSN that names the store's own database connects without it.

    clickhouse-connect sends a DSN's database with every request, and a server
    refuses any request for a database that does not exist yet - so with
    ``http://host:8123/pulse`` the first ``pulse db migrate`` could never create
    ``pulse``. Every statement names the store's database, so the client needs
    no default; any other database in the DSN is kept (and must exist).
    """
    parts = urlsplit(url)
    if parts.path.strip("/") == database:
        return urlunsplit(parts._replace(path="/"))
    return url


def connect_another(settings: StoreSettings, limits: Mapping[str, object] | None = None) -> Client:
    """Another client of this process's store, every query of it bounded by ``limits`` when given (server
    settings such as ``max_execution_time``, ``max_result_rows``): for reads that users trigger, and for the
    leader's jobs.

    It is a client of its own so that its queries never queue behind an insert or hold the ingest client's
    session. chDB allows it: clients of one process on the same path share one engine and its data (each has
    its own connection handle and session settings), and their queries run side by side. The folder lock is
    this process's already (:func:`connect` first).
    """
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        _lock(Path(url.removeprefix("chdb://")))
    return clickhouse_connect.get_client(dsn=url, settings=dict(limits or {}))


@contextmanager
def opened(settings: StoreSettings) -> Iterator[Client]:
    """A client for the duration of a block; embedded chDB is closed and unlocked after it."""
    client = connect(settings)
    try:
        yield client
    finally:
        client.close()
        release(settings)


def _lock(folder: Path) -> None:
    if folder in _LOCKS:
        return
    lock_path = folder.with_name(folder.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ClickHouseLocked(
            f"the embedded ClickHouse folder {folder} is in use by another process (pid {holder}). "
            "Embedded chDB serves one process at a time: stop that process, or point "
            "PULSE_CLICKHOUSE_DSN at a ClickHouse server to run several workers."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _LOCKS[folder] = handle


def release(settings: StoreSettings) -> None:
    """Give up this process's embedded-folder lock (after the client is closed)."""
    url = settings.clickhouse_url
    if url.startswith("chdb://"):
        handle = _LOCKS.pop(Path(url.removeprefix("chdb://")), None)
        if handle is not None:
            handle.close()
