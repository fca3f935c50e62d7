"""The durable-step runner (consumers/loop.py): a batch is acked exactly when its step completed."""

from __future__ import annotations

import asyncio

from faust.types import TP

from consumers.batching import Chunk
from consumers.ingest import BatchAbandoned
from consumers.loop import run_durably
from consumers.records import Message

CHUNKS = [Chunk(TP("t", 0), 1, [Message(0, 5, None, b"{}"), Message(0, 6, None, b"{}")], 2)]


def acks() -> tuple[list[list[int]], object]:
    acked: list[list[int]] = []

    def ack(chunks: object) -> None:
        acked.append([m.offset for c in chunks for m in c.messages])  # type: ignore[attr-defined]

    return acked, ack


def test_a_completed_step_is_acked_and_sees_every_message():
    acked, ack = acks()
    seen: list[int] = []

    async def step(messages: list[Message]) -> None:
        seen.extend(m.offset for m in messages)

    asyncio.run(run_durably(step, CHUNKS, 1.0, ack))
    assert seen == [5, 6] and acked == [[5, 6]]


def test_an_abandoned_batch_is_not_acked():
    acked, ack = acks()

    async def step(messages: list[Message]) -> None:
        raise BatchAbandoned("partitions moved")

    asyncio.run(run_durably(step, CHUNKS, 1.0, ack))
    assert acked == []


def _stopped_while_running(step_s: float, grace_s: float) -> list[list[int]]:
    acked, ack = acks()

    async def step(messages: list[Message]) -> None:
        await asyncio.sleep(step_s)

    async def go() -> bool:
        task = asyncio.ensure_future(run_durably(step, CHUNKS, grace_s, ack))
        await asyncio.sleep(0.05)
        task.cancel()  # SIGTERM: Faust cancels the loop
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(go()), "a stop is passed on after the grace period"
    return acked


def test_on_shutdown_a_step_that_finishes_within_the_grace_period_is_acked():
    assert _stopped_while_running(step_s=0.2, grace_s=2.0) == [[5, 6]]


def test_on_shutdown_a_step_past_the_grace_period_is_abandoned_unacked():
    assert _stopped_while_running(step_s=5.0, grace_s=0.1) == []
