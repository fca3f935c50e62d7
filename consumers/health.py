"""The worker's health for probes: ``/healthz`` (the process serves) and ``/readyz`` (it can do its job now).

Readiness is four checks, and ``/readyz`` answers 200 only when all pass, else
503 with a JSON body naming the failing ones (``{"status": "not_ready",
"failing": ["store"], "checks": {...}}``):

* ``partitions`` - the consumer group assigned this worker at least one
  partition of the events topic. A worker beyond the partition count gets none
  and stays not-ready: it does no work (scale by partitions, not past them).
* ``store`` - ``SELECT 1`` with a client of the probe's own answered (the same
  DSN as the sink's, so a server that refuses or hangs fails it).
* ``kafka`` - the cluster's metadata came back to a client of the probe's own.
* ``lag`` - every assigned partition's high watermark is known, so the lag is
  a number (reported as ``lag``); the value itself never fails the check -
  a worker catching up is exactly the one that must keep its partitions.

The store and Kafka checks are :class:`pipeline.probes.Probe` threads, never
the event loop nor the sink's thread (an insert or the leader's evaluator never
delays a probe, and a hanging probe never delays them); a request only reads
their last results. So a worker that lost its store or broker is not-ready
within ``PROBE_INTERVAL_S + STALE_S`` (20 s, under the 30 s asked) and ready
again after the next probe that succeeds, with no restart.

Both routes bypass :class:`consumers.web.WebGuard`, token and Host check
alike: probes send no token, and the kubelet's ``Host`` is the pod's IP,
which no allowed-host list can know in advance. That is safe because the
answers carry no data: check names, a partition count, a lag, and an error's
class name (never its message, which could quote a DSN's password).
"""

from __future__ import annotations

import json
from typing import Any

import faust

from consumers.faust_adapter import PulseApp
from pipeline.probes import CheckResult, KafkaProbe, Probe, StoreProbe
from pipeline.settings import Settings


class Health:
    """The readiness checks of one worker; :meth:`readiness` is what ``/readyz`` answers."""

    def __init__(self, app: PulseApp, topic: str, store: Probe, kafka: Probe) -> None:
        self._app = app
        self._topic = topic
        self.store = store
        self.kafka = kafka

    def start(self) -> None:
        self.store.start()
        self.kafka.start()

    def stop(self) -> None:
        self.store.stop()
        self.kafka.stop()

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body): 200 when every check passes, else 503 naming the failing ones."""
        lags = self._app.lag(self._topic)
        if lags:
            partitions = CheckResult(True, f"{len(lags)} partition(s) of {self._topic}")
        else:
            partitions = CheckResult(False, f"no partition of {self._topic} assigned (yet)")
        unknown = sorted(p for p, lag in lags.items() if lag is None)
        if not lags:
            lag = CheckResult(False, "no partitions, no lag")
        elif unknown:
            lag = CheckResult(False, f"high watermark unknown for partition(s) {','.join(map(str, unknown))}")
        else:
            lag = CheckResult(True, "known")
        checks = {"partitions": partitions, "store": self.store.result(), "kafka": self.kafka.result(), "lag": lag}
        failing = [name for name, check in checks.items() if not check.ok]
        body: dict[str, Any] = {
            "status": "not_ready" if failing else "ready",
            "failing": failing,
            "checks": {name: check.as_json() for name, check in checks.items()},
            "lag": None if unknown or not lags else sum(v for v in lags.values() if v is not None),
        }
        return (503 if failing else 200), body


def worker_health(settings: Settings, app: PulseApp) -> Health:
    """The worker's :class:`Health` (its probes start with :meth:`Health.start`)."""
    return Health(
        app, settings.events_topic, Probe("store", StoreProbe(settings)), Probe("kafka", KafkaProbe(settings))
    )


def mount(app: faust.App, health: Health) -> None:
    """``/healthz`` and ``/readyz`` on the app's web server, outside the :class:`~consumers.web.WebGuard`."""

    async def healthz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return view.bytes(b'{"status": "ok"}\n', status=200, headers={"Content-Type": "application/json"})

    async def readyz(view: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        status, body = health.readiness()
        payload = (json.dumps(body, sort_keys=True) + "\n").encode()
        return view.bytes(payload, status=status, headers={"Content-Type": "application/json"})

    app.page("/healthz", name="healthz")(healthz)
    app.page("/readyz", name="readyz")(readyz)
