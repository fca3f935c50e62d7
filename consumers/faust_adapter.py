"""The one door to Faust's internals: the events and releases topics delivered per fetch, acked per batch.

Faust delivers every message on its own: the consumer's drain loop awaits
``wait_first(callback(message), ...)`` (two tasks per message), the conductor
builds an ``Event`` and queues it per channel, the stream runs its sensors,
``take_events`` buffers it and acks it one by one - which capped single-event
messages at a few thousand per second. This module keeps Faust as the
framework (its app, consumer group, rebalance callbacks, commit loop, timers
and web server) and changes only how the records of *batch topics* travel
from the consumer to the loops of :mod:`consumers.loop`:

* :class:`BatchingConsumer` hands every record of a batch topic that one
  fetch returned to that topic's :class:`~consumers.batching.Batches` as one
  chunk per partition of plain :class:`~consumers.records.Message` tuples,
  keeping Faust's read-offset and offset-gap bookkeeping; records of other
  topics go Faust's usual way.
* A loop makes a batch durable and then acks its offsets in one call
  (:meth:`PulseApp.ack`, the bookkeeping of Faust's per-message
  ``Consumer.ack``); Faust's commit loop then commits them as before. Nothing
  that was not acked is ever committed, so a batch abandoned or lost in a
  crash is replayed from its first offset.
* :class:`PulseApp` is the app: it takes the :class:`Batches` explicitly,
  subscribes their topics (:meth:`PulseApp.subscribe`), runs a loop as a
  supervised agent (:meth:`PulseApp.run_loop`) and answers which partitions
  this worker holds.

No other module touches a private Faust name (``tests/test_layout.py`` checks
it), and ``tests/consumers/test_faust_contract.py`` pins every behaviour below
against the installed faust-streaming, each failure naming the behaviour.

Faust behaviour relied on, and why
----------------------------------
* ``faust.transport.drivers.aiokafka.Consumer`` / ``Transport`` and
  ``Transport.Consumer`` (the consumer class a transport instantiates), with
  ``App._new_transport()`` overridden to build :class:`BatchingTransport`:
  the only way to put our consumer under the app.
* ``Consumer.getmany(timeout)``, an async generator of ``(tp, message)``: our
  override keeps its structure - ``_wait_next_records(timeout)`` returning
  ``(records, active_partitions)``, ``should_stop``, ``flow_active``, the
  round-robin ``scheduler.iterate(records)``, the generation check against
  ``app.consumer_generation_id``, the ``_buffered_partitions`` filter,
  ``app.monitor.track_tp_end_offset``, ``_to_message(tp, record)`` and
  ``perform_seek()`` when flow is inactive - for the records of other topics.
* Across a rebalance: a fetch in progress waits it out and returns records of
  the new assignment (aiokafka's ``Fetcher.fetched_records`` waits while a
  reassignment is in progress), and Faust resumes the flow only after seeking
  every partition to its committed offset (``Recovery._resume_streams``). So a
  chunk's epoch is taken when its fetch *returned*: only chunks handed over
  before a rebalance began are stale, and the seek reads those again.
* ``Consumer._read_offset`` (a mapping TP -> last offset read, or None) and
  ``Consumer._add_gap(tp, offset_from, offset_to)`` (a coroutine): the drain
  loop's bookkeeping, kept per chunk so re-read records after a seek are
  dropped and offsets skipped (transaction markers) can still be committed;
  :meth:`PulseApp.lag` reads them (and ``_committed_offset``) for ``/readyz``.
* ``Consumer.ack`` under the global reentrant ``faust.types.tuples.ack_lock``,
  on ``_committed_offset`` (TP -> offset or None), ``_acked_index`` (TP -> set),
  ``_acked`` (TP -> list), ``_n_acked`` (int) and ``_waiting_for_ack`` (a
  future, woken with ``mode.utils.futures.notify``): :meth:`BatchingConsumer.ack_offsets`
  does the same per batch, and Faust's commit reads ``_acked`` to decide
  the offsets it commits.
* ``app.topics.add(topic)`` (public) registers a topic for subscription and,
  since the topic acks, makes ``app.topics.acks_enabled_for`` true for it.
* An agent on an in-memory ``app.channel()`` that never receives anything is
  how a loop runs supervised by Faust, started with the app and cancelled when
  it stops (public API, but an agent whose stream stays empty).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from consumers.batching import Batches, Chunk, events_in
from consumers.records import Message

_new_message = tuple.__new__  # Message(...) without its Python-level __new__: this runs once per record


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering the records of batch topics to their :class:`Batches` per fetch."""

    app: PulseApp

    async def getmany(self, timeout: float) -> Any:  # an async generator, like the method it overrides
        """Faust's ``getmany``, except that records of batch topics leave as one chunk per partition."""
        routes = self.app.batch_routes
        records, active_partitions = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        # The epochs after the fetch, not before it. A fetch that began before a rebalance waits it out
        # (aiokafka's ``Fetcher.fetched_records`` waits for the new assignment) and returns records read from
        # the new assignment, after the seek to the committed offsets: stamped with the epoch from before, they
        # were dropped as stale with the read offset already past them, never read again - the partition
        # stalled, nothing logged (issue 16). A rebalance that begins after this point still makes the chunks
        # stale; records not yet chunked then are skipped untouched, and the seek after it reads them again.
        epochs = {b: b.epoch for b in routes.values()}
        if routes and self.flow_active:
            generation = self.app.consumer_generation_id
            rest = {}
            for tp, tp_records in records.items():
                batches = routes.get(tp.topic)
                if batches is None:
                    rest[tp] = tp_records
                elif active_partitions is None or tp in active_partitions or tp in self._buffered_partitions:
                    if batches.epoch != epochs[batches]:
                        continue  # a rebalance began during this hand-over: read again after its seek, untouched
                    chunk = await self._chunk(tp, tp_records, generation, epochs[batches])
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
            events += events_in(msg)
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
    """Faust's app with the batching consumer: the same framework, batch topics delivered per fetch."""

    def __init__(self, id: str, *, batches: Sequence[Batches] = (), **options: Any) -> None:
        super().__init__(id, **options)
        self.batch_routes: dict[str, Batches] = {topic: b for b in batches for topic in b.topics}
        self.pulse_health: Any = None  # the worker's consumers.health.Health, when its web server is on

    def _new_transport(self) -> Any:
        return BatchingTransport(self.conf.broker_consumer, self)

    def subscribe(self, topic: faust.TopicT) -> None:
        """Subscribe to ``topic`` (and commit its acked offsets); a batch topic's records reach its Batches."""
        self.topics.add(topic)

    def run_loop(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body()`` as a Faust agent of concurrency 1: started with the app, cancelled when it stops."""

        async def agent(stream: faust.StreamT[bytes]) -> None:  # its stream stays empty: records come via Batches
            await body()

        agent.__name__ = agent.__qualname__ = name
        self.agent(self.channel(), concurrency=1, name=name)(agent)

    def generation(self) -> int:
        """The consumer's generation: it changes with every rebalance."""
        return self.consumer_generation_id

    def holds(self, topic: str, partition: int) -> bool:
        """Whether this worker is assigned ``partition`` of ``topic`` right now."""
        return TP(topic, partition) in self.consumer.assignment()

    def lag(self, topic: str) -> dict[int, int | None]:
        """Messages not yet read per partition of ``topic`` this worker holds (None: high watermark unknown yet).

        Read position: the last offset read (``_read_offset``) plus one, else the committed offset
        (``_committed_offset``), else 0. Nothing assigned or a consumer not started yet: an empty dict.
        """
        consumer = self.consumer
        assert isinstance(consumer, BatchingConsumer)
        try:
            held = [tp for tp in consumer.assignment() if tp.topic == topic]
        except Exception:  # noqa: BLE001 - not started (or stopping): it holds nothing
            return {}
        lags: dict[int, int | None] = {}
        for tp in held:
            try:
                high = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - revoked between the two calls
                high = None
            read = consumer._read_offset.get(tp)
            position = read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)
            lags[tp.partition] = None if high is None else max(0, high - position)
        return lags

    def highwater(self, tp: TP) -> int | None:
        """The partition's high watermark (the next offset to be written), if known."""
        return self.consumer.highwater(tp)

    def ack(self, chunks: Iterable[Chunk]) -> None:
        """Ack every message of ``chunks``: Faust's commit loop commits them from now on."""
        consumer = self.consumer
        assert isinstance(consumer, BatchingConsumer)
        for chunk in chunks:
            consumer.ack_offsets(chunk.tp, [m.offset for m in chunk.messages])
