"""The emitter for asyncio services (aiohttp, FastAPI): the same background thread, nothing blocking on the loop.

    from pipeline.kafka.async_emitter import AsyncEmitter
    async with AsyncEmitter.from_env(product="checkout", version="2.3.0") as em:
        em.request(user_id="u-17", operation="POST /pay", latency_ms=84.0)   # never blocks: no await
        await em.send({"type": "conversion", ...})                           # waits for room, without blocking
        await em.flush()

An :class:`AsyncEmitter` wraps an :class:`~pipeline.kafka.emitter.Emitter`:
the queue, the packs, the lazy connection and the atexit flush are its.
``send_nowait`` and the typed helpers queue or drop at once, as the sync
``send`` does. ``await send()`` waits (up to ``send_timeout_s``) for room in a
full queue, woken by the background thread, instead of dropping at once;
``flush``, ``close`` and ``release`` wait in a worker thread, so the event loop
never runs a blocking call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from kafka.producer.future import RecordMetadata

from pipeline.events import Event, Release
from pipeline.kafka.emitter import Emitter
from pipeline.kafka.typed_events import TypedEvents
from pipeline.settings import KafkaSettings, Settings


class AsyncEmitter(TypedEvents):
    """A ProductPulse emitter for code that runs on an asyncio event loop."""

    def __init__(
        self,
        settings: KafkaSettings,
        product: str | None = None,
        version: str | None = None,
        environment: str | None = None,
        platform: str | None = None,
        send_timeout_s: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.emitter = Emitter(
            settings, product=product, version=version, environment=environment, platform=platform, **kwargs
        )
        self.product, self.version, self.environment, self.platform = product, version, environment, platform
        self.send_timeout_s = send_timeout_s

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncEmitter:
        """An emitter configured from ``PULSE_*`` variables; returns at once, connecting in the background."""
        return cls(Settings(), **kwargs)

    @property
    def dropped(self) -> int:
        return self.emitter.dropped

    @property
    def failed(self) -> int:
        return self.emitter.failed

    @property
    def invalid(self) -> int:
        return self.emitter.invalid

    @property
    def pending(self) -> int:
        return self.emitter.pending

    def send_nowait(self, event: Event | Mapping[str, Any]) -> Event | None:
        """Queue the event or drop it at once (see :meth:`Emitter.send`); never blocks, never raises."""
        return self.emitter.send(event)

    def _submit(self, body: dict[str, Any]) -> Event | None:
        return self.emitter.send(body)

    async def send(self, event: Event | Mapping[str, Any], timeout: float | None = None) -> Event | None:
        """Queue the event, waiting up to ``timeout`` (default ``send_timeout_s``) for room; never raises.

        Returns the validated event, or None if it was invalid or the queue
        stayed full (then it is dropped and counted, as :meth:`send_nowait` does).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.send_timeout_s if timeout is None else timeout)
        while not self.emitter.has_room():
            left = deadline - loop.time()
            if left <= 0:
                break
            room: asyncio.Future[None] = loop.create_future()

            def wake(room: asyncio.Future[None] = room) -> None:  # called from the emitter's thread
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_resolve, room)

            self.emitter.add_room_waiter(wake)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(room, left)
        return self.emitter.send(event)

    async def release(self, release: Release | Mapping[str, Any]) -> RecordMetadata:
        """Announce a release; returns once Kafka acknowledged it (raises InvalidEvent or Kafka's error)."""
        future = await asyncio.to_thread(self.emitter.release, release)
        return await asyncio.wrap_future(future)

    async def flush(self, timeout: float | None = None) -> int:
        """Send what is queued and wait for the acks (in a worker thread); returns how many are still pending."""
        return await asyncio.to_thread(self.emitter.flush, timeout)

    async def close(self, timeout: float | None = 10.0) -> int:
        """Flush, then stop the emitter; returns how many events were not acknowledged."""
        return await asyncio.to_thread(self.emitter.close, timeout)

    async def __aenter__(self) -> AsyncEmitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _resolve(room: asyncio.Future[None]) -> None:
    if not room.done():
        room.set_result(None)
