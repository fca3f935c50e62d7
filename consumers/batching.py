"""Per-batch delivery of the events topic inside Faust: its costs paid once per fetch, not once per message.

Faust delivers every message on its own: the consumer's drain loop awaits
``wait_first(callback(message), ...)`` (two tasks per message), the conductor
builds an ``Event`` and queues it per channel, the stream runs its sensors,
``take_events`` buffers it and acks it one by one - about 150 us per message
here, which capped single-event messages at a few thousand per second.

This module keeps Faust as the framework (its app, consumer group, rebalance
callbacks, commit loop, timers and web server) and changes only how the
messages of the events topic travel from the consumer to the ingest agent:

* :class:`BatchingConsumer` (Faust's aiokafka consumer) hands every record of
  a *batch topic* that one fetch returned to :class:`Batches` as one chunk of
  plain :class:`~consumers.aggregate.Message` tuples, keeping Faust's read
  offset and offset-gap bookkeeping; records of other topics (releases) go
  Faust's usual way.
* The ingest agent takes batches of chunks (:meth:`Batches.take`), makes them
  durable, and acks each batch's offsets in one call
  (:meth:`BatchingConsumer.ack_offsets`, the same bookkeeping as Faust's
  per-message ``ack``); Faust's commit loop then commits them as before.
* A rebalance drops every buffered chunk (:meth:`Batches.clear`) and chunks of
  an older consumer generation are never taken - Faust seeks each partition
  back to its committed offset after a rebalance, exactly as for its streams.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from consumers.aggregate import Message
from pipeline.events import is_pack

_new_message = tuple.__new__  # Message(...) without its Python-level __new__: this runs once per record
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
    """The buffer between the consumer's fetch loop and the ingest agent, bounded in events."""

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

    async def take(self, max_events: int, within_s: float, generation: Any) -> list[Chunk]:
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
                    continue
                if events + chunk.events > max_events:
                    room = max_events - events
                    if taken and _events_in(chunk.messages[0]) > room:
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


def _split(chunks: deque[Chunk], room: int) -> None:
    """Split the first chunk after as many messages as hold at most ``room`` events (at least one message)."""
    chunk = chunks[0]
    head: list[Message] = []
    events = 0
    for msg in chunk.messages:
        n = _events_in(msg)
        if head and events + n > room:
            break
        head.append(msg)
        events += n
    if len(head) < len(chunk.messages):
        chunks[0] = Chunk(chunk.tp, chunk.generation, chunk.messages[len(head) :], chunk.events - events, chunk.epoch)
        chunks.appendleft(Chunk(chunk.tp, chunk.generation, head, events, chunk.epoch))


def _events_in(msg: Message) -> int:
    value = msg.value
    if value is not None and msg.headers and is_pack(msg.headers):
        return value.count(b"\n") + 1
    return 1


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering the records of batch topics to :class:`Batches` per fetch."""

    async def getmany(self, timeout: float) -> Any:  # an async generator, like the method it overrides
        """Faust's ``getmany``, except that records of batch topics leave as one chunk per partition."""
        batches: Batches | None = getattr(self.app, "batches", None)
        epoch = batches.epoch if batches is not None else 0  # before the fetch: a rebalance during it bumps it
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        if batches is not None and self.flow_active:
            generation = self.app.consumer_generation_id
            rest = {}
            for tp, tp_records in records.items():
                if tp.topic not in batches.topics:
                    rest[tp] = tp_records
                elif active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                    chunk = await self._chunk(tp, tp_records, generation, epoch)
                    if chunk is not None:
                        await batches.put(chunk)
            records = rest
        async for item in self._iterate(records, active_partitions):
            yield item

    async def _chunk(self, tp: TP, records: list[Any], generation: int, epoch: int) -> Chunk | None:
        """The records as Messages, with the read-offset and gap bookkeeping of Faust's drain loop."""
        read_offset = self._read_offset[tp]
        messages: list[Message] = []
        events = 0
        for record in records:
            offset = record.offset
            if read_offset is not None and offset < read_offset:
                continue  # re-read after a seek: Faust drops these too
            if read_offset and offset - read_offset > 1:
                await self._add_gap(tp, read_offset + 1, offset)  # e.g. transaction markers: commit past them
            read_offset = offset
            msg = _new_message(Message, (record.partition, offset, record.key, record.value, record.headers))
            messages.append(msg)
            events += _events_in(msg)
        self._read_offset[tp] = read_offset
        if not messages:
            return None
        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
        return Chunk(tp, generation, messages, events, epoch)

    async def _iterate(self, records: Mapping[TP, Any], active_partitions: set[TP] | None) -> Any:
        """The rest of Faust's ``getmany`` (round-robin over partitions), for records of other topics."""
        if not records:
            return
        generation_id = self.app.consumer_generation_id
        to_message = self._to_message
        if self.flow_active:
            for tp, record in self.scheduler.iterate(records):
                if not self.flow_active or self.app.consumer_generation_id != generation_id:
                    break
                if active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    yield tp, to_message(tp, record)
        else:
            try:
                await self.perform_seek()
            except Exception as exc:  # noqa: BLE001 - as in Faust: logged, the next fetch retries
                self.log.warning(f"exception performing seek when flow not active {exc}")

    def ack_offsets(self, tp: TP, offsets: Iterable[int]) -> int:
        """Ack offsets of one partition at once (Faust's ``Consumer.ack``, per batch); returns how many were new."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return 0
        with ack_lock:
            committed = self._committed_offset[tp]
            acked_index = self._acked_index[tp]
            fresh = [o for o in offsets if (committed is None or o >= committed) and o not in acked_index]
            acked_index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)
            notify(self._waiting_for_ack)
        return len(fresh)


class BatchingTransport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[faust_aiokafka.Consumer]] = BatchingConsumer


class PulseApp(faust.App):
    """Faust's app with the batching consumer: the same framework, the events topic delivered per fetch."""

    batches: Batches | None = None

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)
