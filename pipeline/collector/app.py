"""The collector's aiohttp application: request handlers, one key=value log line per request, and the server."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import prometheus_client
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from kafka.errors import KafkaError, MessageSizeTooLargeError

from pipeline import telemetry
from pipeline.collector.auth import authorize, parse_write_keys
from pipeline.collector.body import DECOMPRESSED_FACTOR, ParsedBody, decode_body, parse_events
from pipeline.collector.errors import EventError, Rejected
from pipeline.collector.link import RETRY, EmitterFactory, KafkaLink, connect_emitter, send_and_wait
from pipeline.settings import Settings

log = logging.getLogger(__name__)

MAX_DETAILS = 100  # error entries in one 400/403 body
KAFKA_THREADS = 32  # requests that may block on the broker at once


def rejection_response(rejected: Rejected) -> web.Response:
    body: dict[str, Any] = {"error": rejected.error}
    if rejected.details:
        body["details"] = [d.as_json() for d in rejected.details[:MAX_DETAILS]]
        if len(rejected.details) > MAX_DETAILS:
            body["details_omitted"] = len(rejected.details) - MAX_DETAILS
    return web.json_response(body, status=rejected.status, headers=rejected.headers)


@dataclass(slots=True)
class _Outcome:
    """What the request log line says besides status and duration."""

    products: Sequence[str] = ()
    events: int = 0
    body_bytes: int = 0
    reason: str = "-"


class Collector:
    """Request handlers and the resources they share (write keys, Kafka link, thread pools)."""

    def __init__(self, settings: Settings, emitter_factory: EmitterFactory = connect_emitter) -> None:
        self.settings = settings
        raw_keys = settings.collector_write_keys
        self.write_keys = parse_write_keys(raw_keys.get_secret_value()) if raw_keys is not None else {}
        if not self.write_keys:
            log.warning("event=collector_no_write_keys detail='every POST /v1/events will be answered 401'")
        self.max_body = settings.collector_max_body_bytes
        self.kafka_pool = ThreadPoolExecutor(KAFKA_THREADS, thread_name_prefix="pulse-collector-kafka")
        self.kafka = KafkaLink(settings, emitter_factory, self.kafka_pool)

    async def on_startup(self, app: web.Application) -> None:
        self.kafka.connect_soon()

    async def on_cleanup(self, app: web.Application) -> None:
        try:
            await self.kafka.close()
        finally:
            self.kafka_pool.shutdown(wait=False)

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: 200 while the process serves; ``kafka`` says whether a producer is connected."""
        return web.json_response({"status": "ok", "kafka": "connected" if self.kafka.emitter else "not_connected"})

    async def post_events(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        outcome = _Outcome()
        try:
            response = await self._collect(request, outcome)
        except Rejected as rejected:
            outcome.reason = rejected.reason
            response = rejection_response(rejected)
        except Exception:  # noqa: BLE001 - answer and log one line instead of aiohttp's bare 500
            log.exception("event=collect_crashed")
            outcome.reason = "internal_error"
            response = web.json_response({"error": "internal error"}, status=500)
        telemetry.COLLECTOR_REQUESTS.labels(str(response.status)).inc()
        log.log(
            logging.WARNING if response.status >= 500 else logging.INFO,
            "event=collect status=%d products=%s events=%d bytes=%d duration_ms=%.1f reason=%s",
            response.status,
            ",".join(sorted(outcome.products)) or "-",
            outcome.events,
            outcome.body_bytes,
            (time.perf_counter() - started) * 1000,
            outcome.reason,
        )
        return response

    async def _collect(self, request: web.Request, outcome: _Outcome) -> web.Response:
        """Authenticate, read, decode, validate, authorize, produce and wait for acks - in that order."""
        allowed = authorize(request.headers.get("Authorization"), self.write_keys)
        outcome.products = sorted(allowed)
        raw = await self._read_body(request)
        outcome.body_bytes = len(raw)
        loop = asyncio.get_running_loop()
        # Inflating up to 8 MiB and validating 1000 events is CPU work of tens of ms: off the event loop.
        parsed = await loop.run_in_executor(None, self._decode_and_parse, raw, request.headers.get("Content-Encoding"))
        outcome.events = parsed.total
        if parsed.errors:
            raise Rejected(400, "invalid events", "invalid_events", details=parsed.errors)
        foreign = [
            EventError(i, "product", f"this write key does not cover product {e.product!r}")
            for i, e in enumerate(parsed.events)
            if e.product not in allowed
        ]
        if foreign:
            raise Rejected(403, "write key does not cover these events", "forbidden_product", details=foreign)
        outcome.products = sorted({e.product for e in parsed.events})
        await self._produce(parsed.encoded)
        return web.json_response({"accepted": len(parsed.events)}, status=202)

    async def _read_body(self, request: web.Request) -> bytes:
        too_large = f"body is larger than {self.max_body} bytes"
        if request.content_length is not None and request.content_length > self.max_body:
            raise Rejected(413, too_large, "too_large")  # before reading a byte of it
        body = bytearray()
        try:
            async for chunk in request.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > self.max_body:  # a chunked body has no Content-Length to check up front
                    raise Rejected(413, too_large, "too_large")
        except (OSError, aiohttp.ClientPayloadError, HttpProcessingError) as exc:
            raise Rejected(400, f"could not read the body: {type(exc).__name__}", "read_failed") from None
        return bytes(body)

    def _decode_and_parse(self, raw: bytes, content_encoding: str | None) -> ParsedBody:
        body = decode_body(raw, content_encoding, self.max_body * DECOMPRESSED_FACTOR)
        return parse_events(
            body,
            max_events=self.settings.collector_max_events,
            max_event_bytes=self.settings.max_event_bytes,
            max_future_skew_s=self.settings.max_future_skew_s,
            max_age_s=self.settings.max_event_age_s,
            now=datetime.now(UTC),
        )

    async def _produce(self, encoded: list[tuple[bytes, bytes]]) -> None:
        """Return once the broker acked every event; raise 503 on any failure or after the ack timeout."""
        emitter = await self.kafka.get()
        timeout = self.settings.collector_ack_timeout_s
        deadline = time.monotonic() + timeout
        work = asyncio.get_running_loop().run_in_executor(self.kafka_pool, send_and_wait, emitter, encoded, deadline)
        try:
            # The grace covers a thread that blocked in send() past the deadline; it cannot be interrupted.
            await asyncio.wait_for(work, timeout + 1.0)
        except MessageSizeTooLargeError:  # a retry cannot help: only with max_event_bytes above the broker's limit
            raise Rejected(413, "an event is larger than Kafka accepts", "too_large_for_kafka") from None
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("event=produce_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])
            self.kafka.discard(emitter)  # a producer that failed may stay wedged: the next request gets a new one
            raise Rejected(
                503,
                f"events not acknowledged by Kafka ({type(exc).__name__}); retry later",
                "kafka_failed",
                headers=RETRY,
            ) from None


async def _metrics(request: web.Request) -> web.Response:
    """The collector's Prometheus metrics (requests by status), beside its API."""
    body = prometheus_client.generate_latest(telemetry.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


def create_app(settings: Settings, emitter_factory: EmitterFactory = connect_emitter) -> web.Application:
    """The collector as an aiohttp application (run it with :func:`run_collector` or aiohttp's test server)."""
    collector = Collector(settings, emitter_factory)
    # auto_decompress off: the collector inflates gzip itself, under its own cap.
    app = web.Application(client_max_size=settings.collector_max_body_bytes, handler_args={"auto_decompress": False})
    app.router.add_post("/v1/events", collector.post_events)
    app.router.add_get("/healthz", collector.healthz)
    app.router.add_get("/metrics", _metrics)
    app.on_startup.append(collector.on_startup)
    app.on_cleanup.append(collector.on_cleanup)
    return app


def run_collector(settings: Settings) -> None:
    """Serve the collector on ``collector_host:collector_port`` until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its per-connection INFO lines would drown the request log
    if settings.collector_write_keys is None:
        raise ValueError("no write keys: set PULSE_COLLECTOR_WRITE_KEYS=product=key[,product2=key2...]")
    app = create_app(settings)
    log.info(
        "event=collector_start host=%s port=%d topic=%s products=%s",
        settings.collector_host,
        settings.collector_port,
        settings.events_topic,
        ",".join(sorted(parse_write_keys(settings.collector_write_keys.get_secret_value()))),
    )
    # access_log off: the handler logs one key=value line per request itself.
    web.run_app(app, host=settings.collector_host, port=settings.collector_port, access_log=None, print=None)
