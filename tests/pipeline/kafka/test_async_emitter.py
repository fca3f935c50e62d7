"""The asyncio emitter: same delivery as the sync one, and the event loop never stalls on Kafka."""

from __future__ import annotations

import asyncio
import time

import pytest
from support.emitting import Errors, body, dead_broker, events_of, read_topic

from pipeline.events import EVENT_ADAPTER
from pipeline.kafka.async_emitter import AsyncEmitter


class LoopWatch:
    """Ticks every 5 ms and keeps the longest gap: a blocking call on the loop shows up as a long one."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.integration
def test_async_emitter_delivers_every_event_without_stalling_the_loop(settings):
    async def scenario() -> tuple[list, int, float, str]:
        with LoopWatch() as watch:
            async with AsyncEmitter(settings, product="checkout", version="3.0", queue_size=20) as em:
                sent = [em.session_started(user_id=f"u-{i}", session_id="s") for i in range(10)]
                # More than the queue holds: await send() waits for room instead of dropping.
                sent += [await em.send(body(f"v-{i}")) for i in range(500)]
                release = await em.release(
                    {"product": "checkout", "version": "3.0", "released_at": "2026-12-01T00:00:00Z"}
                )
                left = await em.flush(timeout=30)
                assert em.dropped == 0
        return sent, left, watch.longest, release.topic

    sent, left, longest, release_topic = asyncio.run(scenario())
    assert left == 0
    assert release_topic == settings.releases_topic
    assert None not in sent
    got = events_of(read_topic(settings, settings.events_topic, want=1))
    assert sorted(str(EVENT_ADAPTER.validate_json(v).event_id) for v in got) == sorted(str(e.event_id) for e in sent)
    assert longest < 0.5  # a flush or connect on the loop would take far longer


def test_against_a_dead_broker_send_waits_its_bound_then_drops():
    async def scenario() -> tuple[object, object, float, int, float]:
        with LoopWatch() as watch:
            em = AsyncEmitter(dead_broker(), queue_size=1, on_error=Errors())
            first = await em.send(body("a"))
            started = time.monotonic()
            second = await em.send(body("b"), timeout=0.3)
            waited = time.monotonic() - started
            assert em.send_nowait(body("c")) is None
            left = await em.close(timeout=0.2)
        return first, second, waited, left + 100 * em.dropped, watch.longest

    first, second, waited, left_and_dropped, longest = asyncio.run(scenario())
    assert first is not None and second is None
    assert 0.25 < waited < 2
    assert left_and_dropped == 1 + 100 * 2
    assert longest < 0.5
