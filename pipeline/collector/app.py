"""The collector's aiohttp application: request handlers, one key=value log line per request, and the server."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import prometheus_client
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from kafka.errors import KafkaError, MessageSizeTooLargeError

from pipeline import telemetry
from pipeline.collector import otlp, posthog, segment, sentry
from pipeline.collector.auth import authorize, basic_user, bearer_key, parse_write_keys, products_for_key
from pipeline.collector.body import (
    DECOMPRESSED_FACTOR,
    ParsedBody,
    decode_body,
    parse_events,
    parse_releases,
    validate_items,
)
from pipeline.collector.errors import EventError, Rejected
from pipeline.collector.intake import Intake
from pipeline.collector.link import RETRY, EmitterFactory, KafkaLink, connect_emitter, send_and_wait
from pipeline.collector.mapping import load_mapping
from pipeline.collector.ratelimit import RateLimits
from pipeline.kafka.login import check_login
from pipeline.probes import KafkaProbe, Probe
from pipeline.settings import Settings

log = logging.getLogger(__name__)

MAX_DETAILS = 100  # error entries in one 400/403 body
KAFKA_THREADS = 32  # requests that may block on the broker at once
T = TypeVar("T")


def rejection_response(rejected: Rejected, dialect: str = "pulse") -> web.Response:
    """The JSON body of a refused request; ``dialect`` adds the fields a standard's SDK logs from an error.

    Segment's SDKs read ``code`` and ``message``, PostHog's ``detail``; every
    route also carries our ``error`` and ``details``.
    """
    body: dict[str, Any] = {"error": rejected.error}
    if dialect == "segment":
        body |= {"code": rejected.reason, "message": rejected.error}
    elif dialect == "posthog":
        body["detail"] = rejected.error
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
    route: str = "events"


Collect = Callable[[web.Request, _Outcome], Awaitable[web.Response]]


class Collector:
    """Request handlers and the resources they share (write keys, Kafka link, thread pools)."""

    def __init__(self, settings: Settings, emitter_factory: EmitterFactory = connect_emitter) -> None:
        self.settings = settings
        raw_keys = settings.collector_write_keys
        self.write_keys = parse_write_keys(raw_keys.get_secret_value()) if raw_keys is not None else {}
        if not self.write_keys:
            log.warning("event=collector_no_write_keys detail='every POST /v1/events will be answered 401'")
        self.max_body = settings.collector_max_body_bytes
        self.mapping = load_mapping(settings.collector_mapping_file)
        rate = settings.collector_rate_limit_eps
        self.limits = (
            RateLimits(rate, max(rate * settings.collector_rate_burst_s, settings.collector_max_events))
            if rate is not None
            else None
        )
        self.kafka_pool = ThreadPoolExecutor(KAFKA_THREADS, thread_name_prefix="pulse-collector-kafka")
        self.kafka = KafkaLink(settings, emitter_factory, self.kafka_pool)
        self.kafka_probe = Probe("kafka", KafkaProbe(settings))
        self.in_flight = 0  # requests between _handle's start and its answer (all on the event loop: no lock)
        self.in_flight_by_sender: Counter[str] = Counter()

    async def on_startup(self, app: web.Application) -> None:
        self.kafka.connect_soon()
        self.kafka_probe.start()

    async def on_cleanup(self, app: web.Application) -> None:
        self.kafka_probe.stop()
        try:
            await self.kafka.close()
        finally:
            self.kafka_pool.shutdown(wait=False)

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: 200 while the process serves; ``kafka`` says whether a producer is connected."""
        return web.json_response({"status": "ok", "kafka": "connected" if self.kafka.emitter else "not_connected"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: 200 while the cluster answers a metadata request (a probe thread's last answer, at most
        ``pipeline.probes.STALE_S`` old), else 503: a load balancer then sends events to another collector."""
        check = self.kafka_probe.result()
        if check.ok:
            return web.json_response({"status": "ready", "kafka": "reachable", "detail": check.detail})
        return web.json_response({"status": "not_ready", "kafka": "unreachable", "detail": check.detail}, status=503)

    async def post_events(self, request: web.Request) -> web.Response:
        return await self._handle(request, "events", "pulse", self._collect)

    async def post_traces(self, request: web.Request) -> web.Response:
        """OTLP/HTTP traces (:mod:`.otlp`)."""
        return await self._handle(request, "otlp", "pulse", self._collect_traces)

    def segment_handler(self, call: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The handler of Segment's ``/v1/batch`` (``call`` None) or of one single-call route (:mod:`.segment`)."""

        async def handler(request: web.Request) -> web.Response:
            async def collect(req: web.Request, outcome: _Outcome) -> web.Response:
                return await self._collect_segment(req, outcome, call)

            return await self._handle(request, "segment", "segment", collect)

        return handler

    async def post_posthog(self, request: web.Request) -> web.Response:
        """PostHog's ``/batch/``, ``/capture/`` and ``/e/`` (:mod:`.posthog`)."""
        return await self._handle(request, "posthog", "posthog", self._collect_posthog)

    def sentry_handler(self, store: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The handler of Sentry's ``/api/<project>/envelope/`` or (``store``) ``/store/`` (:mod:`.sentry`)."""

        async def handler(request: web.Request) -> web.Response:
            async def collect(req: web.Request, outcome: _Outcome) -> web.Response:
                return await self._collect_sentry(req, outcome, store)

            return await self._handle(request, "sentry", "pulse", collect)

        return handler

    async def _handle(self, request: web.Request, route: str, dialect: str, collect: Collect) -> web.Response:
        """Run one route's ``collect`` and log one line; every route answers refusals the same way."""
        started = time.perf_counter()
        outcome = _Outcome(route=route)
        sender = _sender(request)
        self.in_flight += 1
        self.in_flight_by_sender[sender] += 1
        try:
            self._shed(sender)
            response = await collect(request, outcome)
        except Rejected as rejected:
            outcome.reason = rejected.reason
            response = rejection_response(rejected, dialect)
        except Exception:  # noqa: BLE001 - answer and log one line instead of aiohttp's bare 500
            log.exception("event=collect_crashed route=%s", route)
            outcome.reason = "internal_error"
            response = web.json_response({"error": "internal error"}, status=500)
        finally:
            self.in_flight -= 1
            self.in_flight_by_sender[sender] -= 1
            if not self.in_flight_by_sender[sender]:
                del self.in_flight_by_sender[sender]
        telemetry.COLLECTOR_REQUESTS.labels(str(response.status)).inc()
        log.log(
            logging.WARNING if response.status >= 500 else logging.INFO,
            "event=collect status=%d products=%r events=%d bytes=%d duration_ms=%.1f reason=%s route=%s",
            response.status,
            ",".join(sorted(outcome.products)) or "-",  # %r: a product is an event string (quoted, escaped)
            outcome.events,
            outcome.body_bytes,
            (time.perf_counter() - started) * 1000,
            outcome.reason,
            outcome.route,
        )
        return response

    def _shed(self, sender: str) -> None:
        """503 before the body is read (nothing read, nothing produced) when the collector, or this sender, has
        as many requests in flight as it may: overload is shed, not queued, so memory and latency stay bounded,
        and a sender flooding the collector is shed before it takes the others' share."""
        cap, per_sender = self.settings.collector_max_in_flight, self.settings.collector_max_in_flight_per_key
        if self.in_flight_by_sender[sender] > per_sender:
            raise Rejected(503, f"this sender has {per_sender} requests in flight already; retry later",
                           "overloaded_sender", headers=RETRY)  # fmt: skip
        if self.in_flight > cap:
            raise Rejected(503, f"the collector has {cap} requests in flight already; retry later", "overloaded",
                           headers=RETRY)  # fmt: skip

    async def post_releases(self, request: web.Request) -> web.Response:
        """``POST /v1/releases``: what ``pulse release`` does, for a CI job that has a write key and no Kafka."""
        return await self._handle(request, "releases", "pulse", self._collect_releases)

    async def _collect_releases(self, request: web.Request, outcome: _Outcome) -> web.Response:
        """A release object or an array of them; ``released_at`` defaults to now. All or nothing, 202 once acked."""
        allowed = authorize(request.headers.get("Authorization"), self.write_keys)
        outcome.products = sorted(allowed)
        raw = await self._read_body(request, outcome)
        releases = parse_releases(self._inflate(raw, request.headers.get("Content-Encoding")))
        outcome.events = len(releases)
        foreign = [EventError(i, "product", f"this write key does not cover product {r.product!r}")
                   for i, r in enumerate(releases) if r.product not in allowed]  # fmt: skip
        if foreign:
            raise Rejected(403, "write key does not cover these releases", "forbidden_product", details=foreign)
        emitter = await self.kafka.get()
        deadline = time.monotonic() + self.settings.collector_ack_timeout_s

        def send() -> None:
            for future in [emitter.release_now(r) for r in releases]:
                future.get(timeout=max(0.0, deadline - time.monotonic()))

        try:
            await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self.kafka_pool, send),
                                   self.settings.collector_ack_timeout_s + 1.0)  # fmt: skip
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("event=release_produce_failed error=%s", type(exc).__name__)
            self.kafka.discard(emitter)
            raise Rejected(503, f"releases not acknowledged by Kafka ({type(exc).__name__}); retry later",
                           "kafka_failed", headers=RETRY) from None  # fmt: skip
        outcome.products = sorted({r.product for r in releases})
        return web.json_response({"accepted": len(releases)}, status=202)

    async def _collect(self, request: web.Request, outcome: _Outcome) -> web.Response:
        """Authenticate, read, decode, validate, authorize, produce and wait for acks - in that order."""
        allowed = authorize(request.headers.get("Authorization"), self.write_keys)
        outcome.products = sorted(allowed)
        raw = await self._read_body(request, outcome)
        # Inflating up to 8 MiB and validating 1000 events is CPU work of tens of ms: off the event loop.
        parsed = await self._off_loop(self._decode_and_parse, raw, request.headers.get("Content-Encoding"))
        await self._accept(parsed, allowed, outcome)
        return web.json_response({"accepted": len(parsed.events)}, status=202)

    async def _collect_traces(self, request: web.Request, outcome: _Outcome) -> web.Response:
        """As :meth:`_collect`, the body an OTLP ``ExportTraceServiceRequest``; 200 with its response message."""
        allowed = authorize(request.headers.get("Authorization"), self.write_keys)
        outcome.products = sorted(allowed)
        kind = otlp.content_kind(request.headers.get("Content-Type"))
        raw = await self._read_body(request, outcome)
        encoding = request.headers.get("Content-Encoding")

        def work() -> tuple[Intake, ParsedBody]:
            message = otlp.parse_request(self._inflate(raw, encoding), kind)
            intake = otlp.map_request(message, self.mapping)
            return intake, self._validate(intake)

        intake, parsed = await self._off_loop(work)
        await self._accept(parsed, allowed, outcome, intake)
        body, content_type = otlp.response_body(intake, kind)
        # OTLP/HTTP answers success with 200 (the exporters accept any 2xx); sent only once Kafka acked.
        return web.Response(body=body, status=200, content_type=content_type)

    async def _collect_segment(self, request: web.Request, outcome: _Outcome, call: str | None) -> web.Response:
        """As :meth:`_collect` for Segment messages; the key is the basic-auth user, else the body's ``writeKey``."""
        header = request.headers.get("Authorization")
        header_key = basic_user(header) or bearer_key(header)
        if header_key is not None:  # refuse an unknown key before reading a byte of the body
            outcome.products = sorted(products_for_key(header_key, self.write_keys, "Basic"))
        raw = await self._read_body(request, outcome)
        encoding = request.headers.get("Content-Encoding")
        now = datetime.now(UTC)

        def work() -> tuple[frozenset[str], Intake, ParsedBody]:
            messages, body_key = segment.parse_body(self._inflate(raw, encoding), call)
            allowed = products_for_key(header_key or body_key, self.write_keys, "Basic")
            intake = segment.map_messages(messages, _only(allowed), self.mapping, now)
            return allowed, intake, self._validate(intake)

        allowed, intake, parsed = await self._off_loop(work)
        await self._accept(parsed, allowed, outcome, intake)
        return web.json_response({"success": True}, status=200)  # Segment's answer; sent only once Kafka acked

    async def _collect_posthog(self, request: web.Request, outcome: _Outcome) -> web.Response:
        """As :meth:`_collect` for PostHog captures; the key is ``api_key`` in the body (or the events' token)."""
        raw = await self._read_body(request, outcome)
        encoding = request.headers.get("Content-Encoding")
        content_type = request.headers.get("Content-Type")
        query = dict(request.query)
        now = datetime.now(UTC)

        def work() -> tuple[frozenset[str], Intake, ParsedBody]:
            cap = self.max_body * DECOMPRESSED_FACTOR
            items, key = posthog.parse_body(self._inflate(raw, encoding), content_type, query, cap)
            allowed = products_for_key(key or bearer_key(request.headers.get("Authorization")), self.write_keys,
                                       "api_key")  # fmt: skip
            intake = posthog.map_events(items, _only(allowed), self.mapping, now)
            return allowed, intake, self._validate(intake)

        allowed, intake, parsed = await self._off_loop(work)
        await self._accept(parsed, allowed, outcome, intake)
        # posthog-python treats any status but 200 as a failure; sent only once Kafka acked.
        return web.json_response({"status": 1}, status=200)

    async def _collect_sentry(self, request: web.Request, outcome: _Outcome, store: bool) -> web.Response:
        """As :meth:`_collect` for a Sentry envelope (or ``/store/`` event); the key is the DSN's public key."""
        auth = request.headers.get("X-Sentry-Auth") or request.headers.get("Authorization")
        header_key = sentry.auth_key(auth, dict(request.query))
        if header_key is not None:  # refuse an unknown key before reading a byte of the body
            outcome.products = sorted(products_for_key(header_key, self.write_keys, "sentry_key"))
        raw = await self._read_body(request, outcome)
        encoding = request.headers.get("Content-Encoding")
        now = datetime.now(UTC)

        def work() -> tuple[frozenset[str], Intake, ParsedBody, dict[str, Any]]:
            body = self._inflate(raw, encoding)
            if store:
                try:
                    event = json.loads(body)
                except (ValueError, RecursionError) as exc:
                    raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
                header: dict[str, Any] = {"event_id": event.get("event_id")} if isinstance(event, dict) else {}
                allowed = products_for_key(header_key, self.write_keys, "sentry_key")
                intake = sentry.map_store(event, _only(allowed), self.mapping, now)
            else:
                header, items = sentry.split_envelope(body)
                allowed = products_for_key(header_key or sentry.dsn_key(header), self.write_keys, "sentry_key")
                intake = sentry.map_envelope(
                    header, items, _only(allowed), self.mapping, now, self.settings.collector_max_events
                )
            return allowed, intake, self._validate(intake), header

        allowed, intake, parsed, header = await self._off_loop(work)
        await self._accept(parsed, allowed, outcome, intake)
        return web.json_response(sentry.response_body(header), status=200)  # Sentry's answer, once Kafka acked

    async def _accept(
        self, parsed: ParsedBody, allowed: frozenset[str], outcome: _Outcome, intake: Intake | None = None
    ) -> None:
        """The shared end of every route: 400 if any event is invalid, 403 if one is of a product the key does
        not cover, 429 if a product is over its rate limit (nothing produced in all three cases), else produce
        and return once Kafka acked every event."""
        outcome.events = parsed.total
        if parsed.errors:
            raise Rejected(400, "invalid events", "invalid_events", details=parsed.errors)
        labels = intake.labels if intake is not None else None
        foreign = [
            EventError(i, "product", f"this write key does not cover product {e.product!r}",
                       labels[i] if labels is not None else None)
            for i, e in enumerate(parsed.events)
            if e.product not in allowed
        ]  # fmt: skip
        if foreign:
            raise Rejected(403, "write key does not cover these events", "forbidden_product", details=foreign)
        outcome.products = sorted({e.product for e in parsed.events}) or sorted(allowed)
        costs = Counter(e.product for e in parsed.events)
        if self.limits is not None:
            self.limits.admit(costs)  # 429 here: nothing produced, nothing charged
        if parsed.encoded:
            try:
                await self._produce(parsed.encoded)
            except Rejected:
                if self.limits is not None:
                    self.limits.refund(costs)
                raise
        if intake is not None:
            intake.count_unmapped()

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _inflate(self, raw: bytes, content_encoding: str | None) -> bytes:
        return decode_body(raw, content_encoding, self.max_body * DECOMPRESSED_FACTOR)

    def _validate(self, intake: Intake) -> ParsedBody:
        """The mapped events of a standard's route, validated exactly as ``POST /v1/events`` validates its own."""
        return validate_items(
            intake.items,
            labels=intake.labels,
            max_events=self.settings.collector_max_events,
            max_event_bytes=self.settings.max_event_bytes,
            max_future_skew_s=self.settings.max_future_skew_s,
            max_age_s=self.settings.max_event_age_s,
            now=datetime.now(UTC),
        )

    async def _read_body(self, request: web.Request, outcome: _Outcome) -> bytes:
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
        outcome.body_bytes = len(body)
        return bytes(body)

    def _decode_and_parse(self, raw: bytes, content_encoding: str | None) -> ParsedBody:
        return parse_events(
            self._inflate(raw, content_encoding),
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


def _sender(request: web.Request) -> str:
    """Who sends, for fair shedding only (not authentication): the credential header as sent, else the peer."""
    return request.headers.get("Authorization") or request.headers.get("X-Sentry-Auth") or request.remote or "unknown"


def _only(products: frozenset[str]) -> str:
    """The product a key names when it covers exactly one; ``""`` when the events must name theirs."""
    return next(iter(products)) if len(products) == 1 else ""


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
    # The standards' routes (README, "Speaking the standards"): each maps to the same events and answers.
    app.router.add_post("/v1/traces", collector.post_traces)
    app.router.add_post("/v1/batch", collector.segment_handler(None))
    for call in segment.CALLS:
        app.router.add_post(f"/v1/{call}", collector.segment_handler(call))
    for path in ("/batch/", "/capture/", "/e/", "/batch", "/capture", "/e"):
        app.router.add_post(path, collector.post_posthog)
    app.router.add_post("/api/{project}/envelope/", collector.sentry_handler(store=False))
    app.router.add_post("/api/{project}/store/", collector.sentry_handler(store=True))
    app.router.add_post("/v1/releases", collector.post_releases)
    app.router.add_get("/healthz", collector.healthz)
    app.router.add_get("/readyz", collector.readyz)
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
    # A collector may start before Kafka (it answers 503 until it connects), but not with credentials the
    # broker refuses: that never heals by waiting, so it ends here with one line (exit 2).
    check_login(settings)
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
