"""The buffer between the consumer's fetch loop and the ingest loops: chunks of records, taken as batches.

The consumer (:mod:`consumers.faust_adapter`) puts every record of a *batch
topic* that one fetch returned into that topic's :class:`Batches` as one
:class:`Chunk` per partition of plain :class:`~consumers.records.Message`
tuples; a loop (:mod:`consumers.loop`) takes batches of chunks
(:meth:`Batches.take`), bounded in events - a pack counts as its lines - and
in time. A rebalance drops every buffered chunk (:meth:`Batches.clear`), and
chunks of an older consumer generation or epoch are never taken: Faust seeks
each partition back to its committed offset after a rebalance, so they are
read again. Pure asyncio: nothing here touches Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from faust.types import TP

from consumers.records import Message
from pipeline.events import is_pack

log = logging.getLogger(__name__)

PACK_EVENTS = 100  # what the SDK and the collector put in one pack: the batch budget counts a pack as its lines


@dataclass(slots=True)
class Chunk:
    """Records of one partition from one fetch."""

    tp: TP
    generation: int
    messages: list[Message]
    events: int  # events in it (lines of packs + lone messages)
    epoch: int = 0  # Batches.epoch when its fetch began: a rebalance since then makes it stale


class Batches:
    """The buffer between the consumer's fetch loop and a loop taking batches, bounded in events."""

    def __init__(self, topics: Iterable[str], max_buffered_events: int) -> None:
        self.topics = frozenset(topics)
        self.max_buffered_events = max_buffered_events
        self._chunks: deque[Chunk] = deque()
        self._events = 0
        self._changed: asyncio.Event | None = None
        self.epoch = 0  # bumped by every clear(): chunks fetched before it are never taken

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        changed = self._event()
        changed.set()
        self._changed = None

    async def put(self, chunk: Chunk) -> None:
        """Buffer a chunk; waits while the buffer is full (back-pressure on the fetch loop)."""
        while self._events >= self.max_buffered_events:
            await self._event().wait()
        self._chunks.append(chunk)
        self._events += chunk.events
        self._notify()

    def clear(self) -> None:
        """Drop every buffered chunk and any in flight (a rebalance began: Faust re-fetches from committed offsets)."""
        self.epoch += 1
        self._chunks.clear()
        self._events = 0
        self._notify()

    def stale(self, chunks: Iterable[Chunk], generation: int) -> bool:
        """Whether any of ``chunks`` was fetched before a rebalance (Faust re-reads it from the committed offset)."""
        return any(c.generation != generation or c.epoch != self.epoch for c in chunks)

    async def take(self, max_events: int, within_s: float, generation: Callable[[], int]) -> list[Chunk]:
        """The next batch: chunks up to ``max_events`` events, waiting at most ``within_s`` after the first one.

        ``generation()`` is the consumer's current generation: chunks fetched
        under an older one, or before the last :meth:`clear`, are dropped.
        """
        taken: list[Chunk] = []
        events = 0
        deadline: float | None = None
        while True:
            while self._chunks and events < max_events:
                chunk = self._chunks[0]
                if chunk.generation != generation() or chunk.epoch != self.epoch:
                    self._chunks.popleft()
                    self._events -= chunk.events
                    _log_stale(chunk)
                    continue
                if events + chunk.events > max_events:
                    room = max_events - events
                    if taken and events_in(chunk.messages[0]) > room:
                        break  # not even its first message fits: it starts the next batch
                    _split(self._chunks, room)
                    chunk = self._chunks[0]
                self._chunks.popleft()
                self._events -= chunk.events
                taken.append(chunk)
                events += chunk.events
            if taken:
                self._notify()  # room for the fetch loop
                if deadline is None:
                    deadline = time.monotonic() + within_s
            if events >= max_events or (taken and self._chunks):
                return taken
            timeout = None if deadline is None else deadline - time.monotonic()
            if timeout is not None and timeout <= 0:
                return taken
            try:
                await asyncio.wait_for(self._event().wait(), timeout)
            except TimeoutError:
                return taken


def _log_stale(chunk: Chunk) -> None:
    """One line per stale chunk met by a take (only around rebalances; the seek after them reads it again)."""
    log.info(
        "event=stale_chunk_dropped topic=%s partition=%d offsets=%d-%d events=%d",
        chunk.tp.topic,
        chunk.tp.partition,
        chunk.messages[0].offset,
        chunk.messages[-1].offset,
        chunk.events,
    )


def _split(chunks: deque[Chunk], room: int) -> None:
    """Split the first chunk after as many messages as hold at most ``room`` events (at least one message)."""
    chunk = chunks[0]
    head: list[Message] = []
    events = 0
    for msg in chunk.messages:
        n = events_in(msg)
        if head and events + n > room:
            break
        head.append(msg)
        events += n
    if len(head) < len(chunk.messages):
        chunks[0] = Chunk(chunk.tp, chunk.generation, chunk.messages[len(head) :], chunk.events - events, chunk.epoch)
        chunks.appendleft(Chunk(chunk.tp, chunk.generation, head, events, chunk.epoch))


def events_in(msg: Message) -> int:
    """Events in a message: the lines of a pack, or 1."""
    value = msg.value
    if value is not None and msg.headers and is_pack(msg.headers):
        return value.count(b"\n") + 1
    return 1
