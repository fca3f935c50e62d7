"""HTTP collector: ``POST /v1/events`` for services that do not speak Kafka, and the standards' routes.

Modules: :mod:`.auth` (write keys), :mod:`.body` (decoding, parsing, limits),
:mod:`.link` (the Kafka producer link), :mod:`.app` (the aiohttp app and server),
:mod:`.errors` (what a refused request carries). The standards' routes map
their bodies to the same events, then share the validation, authorization and
produce path below: :mod:`.otlp` (``POST /v1/traces``), :mod:`.sentry`
(``/api/<project>/envelope/`` and ``/store/``), :mod:`.segment` (``/v1/batch``
and single calls), :mod:`.posthog` (``/batch/``, ``/capture/``, ``/e/``), with
:mod:`.analytics` (the event-name mapping Segment and PostHog share),
:mod:`.mapping` (defaults and the mapping file) and :mod:`.intake` (what a
mapping hands the shared path). They answer every refusal below as
``/v1/events`` does, and success with the status and body their SDKs expect
(200), sent under the same rule as the 202. README: "Speaking the standards".

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
* **Rate limits, when set.** With ``collector_rate_limit_eps`` each product has
  one token bucket shared by every route; a request over it is ``429`` with
  ``Retry-After``, and nothing of it is produced (:mod:`.ratelimit`).
* **Bounded work per request.** The body is at most ``collector_max_body_bytes``
  as sent (checked from ``Content-Length`` up front and again while reading),
  at most 8x that after ``Content-Encoding: gzip`` (or ``br``), and holds at most
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
