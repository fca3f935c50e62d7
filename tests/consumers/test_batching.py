"""The buffer between the consumer's fetch loop and the ingest agent (consumers/batching.py), without Kafka."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from faust.types import TP

from consumers.batching import Batches, Chunk
from consumers.records import Message
from pipeline.events import PACK_FORMAT, PACK_HEADER

TOPIC = "pulse.events"
PACK = [(PACK_HEADER, PACK_FORMAT)]


def singles(partition: int, first: int, n: int, generation: int = 1) -> Chunk:
    messages = [Message(partition, first + i, None, b"{}") for i in range(n)]
    return Chunk(TP(TOPIC, partition), generation, messages, n)


def packs(partition: int, first: int, sizes: list[int], generation: int = 1) -> Chunk:
    messages = [Message(partition, first + i, None, b"\n".join([b"{}"] * k), PACK) for i, k in enumerate(sizes)]
    return Chunk(TP(TOPIC, partition), generation, messages, sum(sizes))


def offsets(chunks: list[Chunk]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for c in chunks for m in c.messages]


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(coro)


def test_a_batch_holds_up_to_its_budget_of_events_and_splits_a_chunk_to_fit():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(singles(0, 0, 30))
        await b.put(singles(1, 0, 30))
        first = await b.take(50, 5.0, lambda: 1)
        assert offsets(first) == [(0, i) for i in range(30)] + [(1, i) for i in range(20)]
        second = await b.take(50, 0.05, lambda: 1)
        assert offsets(second) == [(1, i) for i in range(20, 30)]

    run(go())


def test_packs_count_as_their_lines():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(packs(0, 0, [100, 100, 100]))
        first = await b.take(250, 5.0, lambda: 1)
        assert offsets(first) == [(0, 0), (0, 1)]
        assert sum(c.events for c in first) == 200
        rest = await b.take(250, 0.05, lambda: 1)
        assert offsets(rest) == [(0, 2)]

    run(go())


def test_a_first_message_larger_than_the_budget_is_a_batch_of_its_own():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(packs(0, 0, [300, 10]))
        assert offsets(await b.take(100, 5.0, lambda: 1)) == [(0, 0)]
        assert offsets(await b.take(100, 0.05, lambda: 1)) == [(0, 1)]

    run(go())


def test_a_partial_batch_leaves_after_within_seconds():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(singles(0, 0, 3))
        started = time.monotonic()
        got = await b.take(100, 0.2, lambda: 1)
        assert offsets(got) == [(0, 0), (0, 1), (0, 2)]
        assert 0.15 <= time.monotonic() - started < 2.0

    run(go())


def test_take_waits_for_the_first_chunk():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        taker = asyncio.ensure_future(b.take(5, 0.1, lambda: 1))
        await asyncio.sleep(0.1)
        assert not taker.done()
        await b.put(singles(0, 7, 5))
        assert offsets(await asyncio.wait_for(taker, 2.0)) == [(0, i) for i in range(7, 12)]

    run(go())


def test_chunks_of_an_older_generation_are_dropped():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(singles(0, 0, 5, generation=1))
        await b.put(singles(0, 0, 5, generation=2))
        assert [c.generation for c in await b.take(100, 0.05, lambda: 2)] == [2]

    run(go())


def test_a_full_buffer_holds_the_fetch_loop_back_until_a_batch_is_taken():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=10)
        await b.put(singles(0, 0, 10))
        blocked = asyncio.ensure_future(b.put(singles(0, 10, 5)))
        await asyncio.sleep(0.1)
        assert not blocked.done()
        assert len(offsets(await b.take(10, 0.05, lambda: 1))) == 10
        await asyncio.wait_for(blocked, 2.0)
        assert offsets(await b.take(10, 0.05, lambda: 1)) == [(0, i) for i in range(10, 15)]

    run(go())


def test_clear_drops_everything_buffered():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        await b.put(singles(0, 0, 5))
        b.clear()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.take(100, 0.05, lambda: 1), 0.3)

    run(go())


def test_chunks_fetched_before_a_clear_are_never_taken():
    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        stale = singles(0, 0, 5)
        stale.epoch = b.epoch
        b.clear()  # a rebalance began while that fetch was in flight
        await b.put(stale)
        fresh = singles(0, 0, 5)
        fresh.epoch = b.epoch
        await b.put(fresh)
        assert [c.epoch for c in await b.take(100, 0.05, lambda: 1)] == [b.epoch]

    run(go())


def test_a_stale_chunk_is_dropped_with_a_log_line(caplog):
    """Issue 16: chunks dropped without a word hid a stall; each drop now names its partition and offsets."""

    async def go() -> None:
        b = Batches({TOPIC}, max_buffered_events=1000)
        stale = singles(3, 196, 5)
        b.clear()
        await b.put(stale)
        fresh = singles(0, 0, 1, generation=2)
        fresh.epoch = b.epoch  # fetched after the rebalance: taken
        await b.put(fresh)
        assert offsets(await asyncio.wait_for(b.take(100, 0.05, lambda: 2), 2.0)) == [(0, 0)]

    with caplog.at_level(logging.INFO, logger="consumers.batching"):
        run(go())
    lines = [r.getMessage() for r in caplog.records if "stale_chunk_dropped" in r.getMessage()]
    assert lines == [f"event=stale_chunk_dropped topic={TOPIC} partition=3 offsets=196-200 events=5"]
