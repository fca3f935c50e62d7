"""Readiness probes that run on threads of their own: a request reads their last answer and never waits.

A :class:`Probe` calls its check every ``PROBE_INTERVAL_S`` on a daemon
thread; it fails when its last attempt failed or when it has had no answer for
``STALE_S`` (a call that hangs, e.g. a store that accepts connections and never
answers). So whoever asks (``/readyz`` of the worker and of the collector)
learns of a lost dependency within ``PROBE_INTERVAL_S + STALE_S`` (20 s) and of
its return at the next probe, with no restart. A failure is reported by its
exception's class name only: messages can quote a DSN and its password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient

from pipeline import clickhouse
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import KafkaSettings, StoreSettings

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0  # how often a probe runs
STALE_S = 15.0  # a probe with no answer for this long fails (its call hangs)
PROBE_TIMEOUT_MS = 8_000  # the Kafka probe's request timeout


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class Probe:
    """Runs ``call()`` every ``interval_s`` on a daemon thread of its own and remembers how it went."""

    def __init__(
        self, name: str, call: Callable[[], str], interval_s: float = PROBE_INTERVAL_S, stale_s: float = STALE_S
    ) -> None:
        self.name = name
        self._call = call
        self._interval_s = interval_s
        self._stale_s = stale_s
        self._lock = threading.Lock()
        self._last: CheckResult = CheckResult(False, "not probed yet")
        self._answered_at = time.monotonic()  # the grace for the first answer starts now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe-{name}", daemon=True)

    def start(self) -> None:
        self._answered_at = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                result = CheckResult(True, self._call())
            except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the class name says which
                result = CheckResult(False, f"{type(exc).__name__}")
            with self._lock:
                if result.ok != self._last.ok:
                    log.log(
                        logging.INFO if result.ok else logging.WARNING,
                        "event=probe_%s check=%s detail=%s",
                        "passed" if result.ok else "failed",
                        self.name,
                        result.detail,
                    )
                self._last, self._answered_at = result, time.monotonic()
            self._stop.wait(self._interval_s)
        close = getattr(self._call, "close", None)  # a probe's own client, once it stopped (not a request's wait)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - stopping: nothing left to report to
                log.debug("event=probe_close_failed check=%s", self.name)

    def result(self) -> CheckResult:
        """The last answer, or a failure if there has been none for ``stale_s``."""
        with self._lock:
            silent_s = time.monotonic() - self._answered_at
            if silent_s > self._stale_s:
                return CheckResult(False, f"no answer for {silent_s:.0f}s")
            return self._last


class StoreProbe:
    """``SELECT 1`` on a client of its own, opened again after a failure (a server may have restarted)."""

    def __init__(self, settings: StoreSettings) -> None:
        self._settings = settings
        self._client: Any = None

    def __call__(self) -> str:
        try:
            if self._client is None:
                self._client = clickhouse.connect_another(self._settings, {"max_execution_time": 5})
            self._client.command("SELECT 1")
        except Exception:
            self._client = None
            raise
        return "embedded" if self._settings.embedded_clickhouse else "server"

    def close(self) -> None:
        """Close a server client; an embedded one is left to the process (its engine is shared with the sink)."""
        client, self._client = self._client, None
        if client is not None and not self._settings.embedded_clickhouse:
            client.close()


class KafkaProbe:
    """The cluster's metadata on an admin client of its own, created again after a failure."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._admin: KafkaAdminClient | None = None

    def __call__(self) -> str:
        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(
                    client_id="pulse-readiness",
                    request_timeout_ms=PROBE_TIMEOUT_MS,
                    bootstrap_timeout_ms=PROBE_TIMEOUT_MS,
                    **kafka_python_config(self._settings),
                )
            brokers = self._admin.describe_cluster()["brokers"]
        except Exception:
            admin, self._admin = self._admin, None
            if admin is not None:
                admin.close()
            raise
        return f"{len(brokers)} broker(s)"

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            admin.close()
