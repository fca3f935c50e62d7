"""HTTP collector: ``POST /v1/events`` for services that do not speak Kafka.

What a client can rely on:

* **202 means stored.** The collector answers ``202 {"accepted": n}`` only after
  the broker acknowledged (``acks=all``) every event of the request, within
  ``collector_ack_timeout_s``. Otherwise the answer is ``503`` with a
  ``Retry-After`` header - never 202. The collector starts and answers 503 while
  Kafka is down; it connects on a later request.
* **All or nothing on validation.** Every event is validated with the models of
  :mod:`pipeline.events`. If any event is invalid the answer is ``400`` listing
  each bad event's index, field and message, and nothing of the request is
  produced. Likewise ``403`` (an event of a product the write key does not
  cover) produces nothing.
* **A 503 may still have stored some events** (a pack was sent before the broker
  went away, or acked just after the deadline). Retrying is safe when the client
  sets ``event_id``: the worker counts an id once. Events without an id get a
  fresh one here, so their retries count twice.
* **Bounded work per request.** The body is at most ``collector_max_body_bytes``
  as sent (checked from ``Content-Length`` up front and again while reading),
  at most 8x that after ``Content-Encoding: gzip``, and holds at most
  ``collector_max_events`` events; beyond that the answer is ``413``. Events the
  worker would dead-letter anyway (over ``max_event_bytes`` encoded, or further
  than ``max_future_skew_s`` in the future) are refused with 400 here, where the
  client can still see why.

Authentication: ``Authorization: Bearer <write key>``; keys come from
``PULSE_COLLECTOR_WRITE_KEYS`` as ``product=key,product2=key2``. A missing or
unknown key is 401. Keys and the ``Authorization`` header are never logged.

Blocking kafka-python calls (connecting, sending, waiting for acks) run in a
thread pool, never on the event loop. Each request logs one key=value line.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from pydantic import ValidationError

from pipeline.broker import ensure_topics, kafka_python_config
from pipeline.emitter import Emitter
from pipeline.events import EVENT_ADAPTER, Event, encode_event, partition_key
from pipeline.settings import Settings

log = logging.getLogger(__name__)

DECOMPRESSED_FACTOR = 8  # a gzip body may inflate to this many times collector_max_body_bytes
RETRY_AFTER_S = 5  # what a 503 asks the client to wait
RECONNECT_BACKOFF_S = 2.0  # after a failed connect, requests answer 503 at once for this long
SEND_CHUNK_BYTES = 900 * 1024  # one send_now call's events; keeps every pack under a default broker's 1 MiB limit
MAX_DETAILS = 100  # error entries in one 400/403 body
ERRORS_PER_EVENT = 5
KAFKA_THREADS = 32  # requests that may block on the broker at once
_BEARER = {"WWW-Authenticate": 'Bearer realm="pulse"'}
_RETRY = {"Retry-After": str(RETRY_AFTER_S)}

EmitterFactory = Callable[[Settings], Emitter]


# --- pure parts: keys, body decoding, parsing and validation -------------------------------------------------


class Rejected(Exception):
    """A request refused as a whole: the HTTP status, a message for the client and a short code for the log."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        details: Sequence[EventError] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.reason = reason
        self.details = list(details)
        self.headers = headers or {}

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error}
        if self.details:
            body["details"] = [d.as_json() for d in self.details[:MAX_DETAILS]]
            if len(self.details) > MAX_DETAILS:
                body["details_omitted"] = len(self.details) - MAX_DETAILS
        return web.json_response(body, status=self.status, headers=self.headers)


@dataclass(frozen=True, slots=True)
class EventError:
    """What is wrong with one event of a request; ``field`` is a dotted path such as ``request.latency_ms``."""

    index: int
    field: str | None
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class ParsedBody:
    """A parsed request of ``total`` events: all of them valid (``errors`` empty), or the errors and no events."""

    total: int
    events: list[Event]
    encoded: list[tuple[bytes, bytes]]  # (Kafka key, canonical JSON) per event, for Emitter.send_now
    errors: list[EventError]


def parse_write_keys(raw: str) -> dict[str, str]:
    """``product=key,product2=key2`` as {product: key}. Errors never quote a key."""
    keys: dict[str, str] = {}
    for n, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            continue
        product, sep, key = item.partition("=")
        product, key = product.strip(), key.strip()
        if not sep or not product or not key:
            raise ValueError(f"collector_write_keys: item {n} is not product=key")
        if len(product) > 64 or any(c.isspace() for c in product):
            raise ValueError(f"collector_write_keys: item {n} has an invalid product name")
        if product in keys:
            raise ValueError(f"collector_write_keys: product {product!r} appears twice")
        keys[product] = key
    if not keys:
        raise ValueError("collector_write_keys holds no product=key pair")
    return keys


def authorize(authorization: str | None, write_keys: dict[str, str]) -> frozenset[str]:
    """The products a ``Bearer`` write key covers; raises 401 for a missing or unknown key.

    Every configured key is compared in constant time, so timing tells nothing
    about which key (or how much of it) matched.
    """
    scheme, _, presented = (authorization or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise Rejected(401, "missing write key: send Authorization: Bearer <key>", "no_key", headers=_BEARER)
    given = presented.encode()
    products = frozenset(p for p, key in write_keys.items() if hmac.compare_digest(given, key.encode()))
    if not products:
        raise Rejected(401, "unknown write key", "bad_key", headers=_BEARER)
    return products


def decode_body(raw: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body after ``Content-Encoding``; inflating stops (413) past ``max_bytes``, so a gzip bomb costs nothing."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise Rejected(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none", "bad_encoding")
    out = bytearray()
    data = raw
    try:
        while data:  # gzip allows several members back to back
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            out += inflater.decompress(data, max_bytes - len(out) + 1)
            if len(out) > max_bytes:
                raise Rejected(413, f"body inflates to more than {max_bytes} bytes", "too_large_inflated")
            if not inflater.eof:
                raise Rejected(400, "gzip body is truncated", "bad_gzip")
            data = inflater.unused_data
    except zlib.error as exc:
        raise Rejected(400, f"body is not valid gzip: {exc}", "bad_gzip") from None
    return bytes(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_events(
    body: bytes,
    *,
    max_events: int,
    max_event_bytes: int,
    max_future_skew_s: float,
    now: datetime,
) -> ParsedBody:
    """Parse and validate a decoded body: one event object, an array of them, or ``{"events": [...]}``.

    Problems with the body as a whole raise :class:`Rejected` (400 not JSON or
    no events, 413 too many events); problems with single events are returned
    as :class:`EventError`\\ s, and then no event is returned at all.
    """
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}", "bad_json") from None
    if isinstance(doc, dict) and "events" in doc:
        if set(doc) != {"events"} or not isinstance(doc["events"], list):
            raise Rejected(400, 'a batch object must be exactly {"events": [...]}', "bad_shape")
        items: list[Any] = doc["events"]
    elif isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict):
        items = [doc]
    else:
        raise Rejected(400, "body must be an event object, an array of events or {'events': [...]}", "bad_shape")
    if not items:
        raise Rejected(400, "body holds no events", "empty")
    if len(items) > max_events:
        raise Rejected(413, f"{len(items)} events in one request; the limit is {max_events}", "too_many_events")

    future_limit = now + timedelta(seconds=max_future_skew_s)
    events: list[Event] = []
    encoded: list[tuple[bytes, bytes]] = []
    errors: list[EventError] = []
    for index, item in enumerate(items):
        try:
            event: Event = EVENT_ADAPTER.validate_python(item)
        except ValidationError as exc:
            errors.extend(_event_errors(index, exc))
            continue
        value = encode_event(event)
        if len(value) > max_event_bytes:
            errors.append(
                EventError(index, None, f"event is {len(value)} bytes encoded; the limit is {max_event_bytes}")
            )
        elif event.ts > future_limit:
            errors.append(
                EventError(index, "ts", f"ts is more than {max_future_skew_s:.0f}s ahead of the collector's clock")
            )
        elif not errors:  # after the first error only the errors matter
            events.append(event)
            encoded.append((partition_key(event), value))
    if errors:
        return ParsedBody(len(items), [], [], errors)
    return ParsedBody(len(items), events, encoded, [])


def _event_errors(index: int, exc: ValidationError) -> Iterator[EventError]:
    for err in exc.errors(include_url=False, include_input=False)[:ERRORS_PER_EVENT]:
        loc = ".".join(str(p) for p in err["loc"])
        if not loc and err["type"].startswith("union_tag"):
            loc = "type"
        yield EventError(index, loc or None, err["msg"])


def chunks(
    encoded: list[tuple[bytes, bytes]], max_bytes: int = SEND_CHUNK_BYTES
) -> Iterator[list[tuple[bytes, bytes]]]:
    """Consecutive runs of events of at most ``max_bytes`` together (one event may exceed it alone)."""
    chunk: list[tuple[bytes, bytes]] = []
    size = 0
    for pair in encoded:
        if chunk and size + len(pair[1]) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(pair)
        size += len(pair[1]) + 1
    if chunk:
        yield chunk


# --- Kafka edge ------------------------------------------------------------------------------------------------


def connect_emitter(settings: Settings) -> Emitter:
    """The default emitter factory: an :class:`Emitter` whose every blocking call gives up within the ack timeout.

    Same durability as the SDK's producer (``acks=all``, idempotent), but
    connecting, metadata waits and delivery are bounded by
    ``collector_ack_timeout_s``: a record the client was told 503 about should
    not be delivered minutes later, and a dead broker must not hold a thread
    for the SDK's default 30-120 s. Once the broker answered, the topics are
    created if missing (as the worker does), so the first write does not
    auto-create ``<prefix>.events`` with the broker's default partition count.
    """
    timeout_ms = max(1, int(settings.collector_ack_timeout_s * 1000))
    linger_ms = 2
    producer = KafkaProducer(
        acks="all",
        enable_idempotence=True,
        retries=2**31 - 1,
        max_in_flight_requests_per_connection=5,
        linger_ms=linger_ms,
        batch_size=1024 * 1024,
        max_request_size=2 * 1024 * 1024,
        bootstrap_timeout_ms=timeout_ms,
        max_block_ms=timeout_ms,
        request_timeout_ms=timeout_ms,
        delivery_timeout_ms=timeout_ms + linger_ms,
        client_id="pulse-collector",
        **kafka_python_config(settings),
    )
    try:
        try:
            ensure_topics(settings, timeout_s=settings.collector_ack_timeout_s)
        except Exception as exc:  # noqa: BLE001 - best effort: a collector may lack the right to create topics
            log.warning("event=ensure_topics_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])
        return Emitter(settings, linger_ms=linger_ms, producer=producer)
    except BaseException:
        producer.close(timeout=0)
        raise


def _send_and_wait(emitter: Emitter, encoded: list[tuple[bytes, bytes]], deadline: float) -> None:
    """Produce the events and block until the broker acked all of them (runs in a Kafka thread)."""
    if time.monotonic() >= deadline:
        raise KafkaTimeoutError("request waited for a Kafka thread past its ack deadline")
    futures = []
    for chunk in chunks(encoded):
        futures.extend(emitter.send_now(chunk))
    for future in futures:
        future.get(timeout=max(0.0, deadline - time.monotonic()))


class KafkaLink:
    """The collector's :class:`Emitter`, created on first need and again after a failure.

    Creating it connects to the broker, so it is never done at import or app
    construction: a collector started while Kafka is down serves 503s and
    connects once the broker is back. Concurrent requests share one attempt;
    after a failed attempt, requests are answered 503 at once for
    ``RECONNECT_BACKOFF_S`` instead of each waiting for a timeout.
    """

    def __init__(self, settings: Settings, factory: EmitterFactory, pool: ThreadPoolExecutor) -> None:
        self.settings = settings
        self.factory = factory
        self.pool = pool
        self.emitter: Emitter | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._retry_at = 0.0

    def connect_soon(self) -> None:
        """Start connecting in the background unless connected, connecting or backing off."""
        if self.emitter is None and self._connecting is None and time.monotonic() >= self._retry_at:
            self._connecting = asyncio.ensure_future(self._connect())

    async def get(self) -> Emitter:
        """The emitter, connecting first if need be; raises 503 if Kafka cannot be reached."""
        self.connect_soon()
        if self.emitter is None and self._connecting is not None:
            await asyncio.shield(self._connecting)  # a client hanging up must not orphan the attempt
        if self.emitter is None:
            raise Rejected(503, "Kafka is unreachable; retry later", "kafka_unreachable", headers=_RETRY)
        return self.emitter

    async def _connect(self) -> None:
        started = time.monotonic()
        try:
            self.emitter = await asyncio.get_running_loop().run_in_executor(self.pool, self.factory, self.settings)
            log.info(
                "event=kafka_connected topic=%s seconds=%.2f", self.settings.events_topic, time.monotonic() - started
            )
        except Exception as exc:  # noqa: BLE001 - whatever failed, the answer is "not now" and a later retry
            self._retry_at = time.monotonic() + RECONNECT_BACKOFF_S
            log.warning(
                "event=kafka_connect_failed error=%s detail=%r retry_in_s=%.1f",
                type(exc).__name__,
                str(exc)[:200],
                RECONNECT_BACKOFF_S,
            )
        finally:
            self._connecting = None

    async def close(self) -> None:
        connecting = self._connecting
        if connecting is not None:
            await connecting
        if self.emitter is not None:
            emitter, self.emitter = self.emitter, None
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.pool, emitter.close, self.settings.collector_ack_timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - shutting down: report, do not crash the cleanup
                log.warning("event=kafka_close_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])


# --- the HTTP app ----------------------------------------------------------------------------------------------


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
            response = rejected.response()
        except Exception:  # noqa: BLE001 - answer and log one line instead of aiohttp's bare 500
            log.exception("event=collect_crashed")
            outcome.reason = "internal_error"
            response = web.json_response({"error": "internal error"}, status=500)
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
            now=datetime.now(UTC),
        )

    async def _produce(self, encoded: list[tuple[bytes, bytes]]) -> None:
        """Return once the broker acked every event; raise 503 on any failure or after the ack timeout."""
        emitter = await self.kafka.get()
        timeout = self.settings.collector_ack_timeout_s
        deadline = time.monotonic() + timeout
        work = asyncio.get_running_loop().run_in_executor(self.kafka_pool, _send_and_wait, emitter, encoded, deadline)
        try:
            # The grace covers a thread that blocked in send() past the deadline; it cannot be interrupted.
            await asyncio.wait_for(work, timeout + 1.0)
        except MessageSizeTooLargeError:  # a retry cannot help: only with max_event_bytes above the broker's limit
            raise Rejected(413, "an event is larger than Kafka accepts", "too_large_for_kafka") from None
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("event=produce_failed error=%s detail=%r", type(exc).__name__, str(exc)[:200])
            raise Rejected(
                503,
                f"events not acknowledged by Kafka ({type(exc).__name__}); retry later",
                "kafka_failed",
                headers=_RETRY,
            ) from None


def create_app(settings: Settings, emitter_factory: EmitterFactory = connect_emitter) -> web.Application:
    """The collector as an aiohttp application (run it with :func:`run_collector` or aiohttp's test server)."""
    collector = Collector(settings, emitter_factory)
    # auto_decompress off: the collector inflates gzip itself, under its own cap.
    app = web.Application(client_max_size=settings.collector_max_body_bytes, handler_args={"auto_decompress": False})
    app.router.add_post("/v1/events", collector.post_events)
    app.router.add_get("/healthz", collector.healthz)
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
