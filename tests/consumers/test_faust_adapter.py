"""The batching consumer's hand-over across a rebalance (consumers/faust_adapter.py), without a broker.

A chunk marked stale is dropped, and that is only safe if its records are read
again: Faust seeks every partition back to its committed offset after the
rebalance that made it stale. The consumer here is the app's own, not started;
its fetch (``_wait_next_records``) is replaced by one that lets a rebalance
happen while it waits, as aiokafka's ``Fetcher.fetched_records`` does when a
fetch begun before a rebalance waits for the new assignment (issue 16: three
workers, a leader killed, partitions that were never read again).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from consumers.batching import Batches, Chunk
from consumers.faust_adapter import BatchingConsumer, PulseApp
from consumers.records import Message

TOPIC = "adapter.events"


def records(partition: int, first: int, n: int) -> list[Any]:
    """What aiokafka's fetcher returns for one partition: records with offset, partition, key, value, headers."""
    return [SimpleNamespace(offset=first + i, partition=partition, key=None, value=b"{}", headers=()) for i in range(n)]


def consumer_with(batches: Batches, fetch: Any) -> tuple[PulseApp, BatchingConsumer]:
    app = PulseApp("adapter", batches=(batches,), broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    assert isinstance(consumer, BatchingConsumer)
    consumer._wait_next_records = fetch  # type: ignore[method-assign]
    consumer.highwater = lambda tp: None  # type: ignore[method-assign]
    return app, consumer


async def drain(consumer: BatchingConsumer) -> list[Any]:
    return [item async for item in consumer.getmany(timeout=1.0)]


def offsets(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for c in chunks for m in c.messages]


def test_records_of_a_fetch_that_waited_out_a_rebalance_are_taken():
    """The fetch began before the rebalance and returned records of the new assignment: they must be stored."""
    batches = Batches({TOPIC}, max_buffered_events=1000)
    tp = TP(TOPIC, 3)

    async def fetch(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
        batches.clear()  # the rebalance begins while the fetch waits (our on_revoked)
        app.consumer_generation_id += 1  # the new assignment, and Faust's seek to the committed offset 196
        consumer._read_offset[tp] = 196
        return {tp: records(3, 196, 5)}, {tp}

    app, consumer = consumer_with(batches, fetch)

    async def go() -> list[Chunk]:
        assert await drain(consumer) == []
        try:  # take waits for a first chunk: bounded, so a dropped one fails here instead of hanging
            return await asyncio.wait_for(batches.take(100, 0.05, app.generation), 2.0)
        except TimeoutError:
            return []

    taken = asyncio.run(go())
    assert offsets(taken) == [(3, o) for o in range(196, 201)], "records read after the seek were dropped"
    assert consumer._read_offset[tp] == 200


def test_a_rebalance_during_the_hand_over_leaves_the_rest_unread():
    """A rebalance that begins while one partition's chunk waits for room: no partition's read offset moves on.

    The waiting chunk goes stale; the partition after it is not chunked at all, so its read offset stays where
    it was and the seek after the rebalance reads its records again.
    """
    batches = Batches({TOPIC}, max_buffered_events=5)
    tp0, tp1 = TP(TOPIC, 0), TP(TOPIC, 1)

    async def fetch(timeout: float) -> tuple[dict[TP, list[Any]], set[TP]]:
        return {tp0: records(0, 10, 3), tp1: records(1, 20, 3)}, {tp0, tp1}

    app, consumer = consumer_with(batches, fetch)
    consumer._read_offset[tp0] = 9
    consumer._read_offset[tp1] = 19

    async def go() -> None:
        await batches.put(Chunk(tp0, 0, [Message(0, i, None, b"{}") for i in range(5)], 5))  # the buffer is full
        handing_over = asyncio.ensure_future(drain(consumer))
        await asyncio.sleep(0.05)
        assert not handing_over.done(), "the hand-over should wait for room"
        batches.clear()  # the rebalance begins
        await asyncio.wait_for(handing_over, 2.0)
        with pytest.raises(TimeoutError):  # take waits for a first chunk: none may come
            taken = await asyncio.wait_for(batches.take(100, 0.05, app.generation), 0.3)
            raise AssertionError(f"a chunk from before the rebalance was taken: {offsets(taken)}")

    asyncio.run(go())
    assert consumer._read_offset[tp1] == 19, "the partition after the rebalance began was marked read"
