"""Stage one of a batch: every payload decoded and validated, the valid events kept as columns - pure, no state.

Per event there is one decode (:func:`pipeline.events.decode_many`: msgspec in
C, pydantic only for what it cannot vouch for) and a few list appends; the
event is never re-encoded. An event without ``event_id`` gets one derived from
its position (topic, partition, offset, index in pack), so every replay gives
it the same id. Nothing here touches the dedup memory or the watermarks, so a
batch can be decoded ahead, in another process
(:mod:`consumers.decode_process`), while the one before it is stored;
:func:`consumers.aggregate.aggregate_decoded` then decides which of its events
are stored and counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from operator import attrgetter, itemgetter
from typing import Any

import pyarrow as pa
from msgspec import UNSET

from consumers.records import DeadLetter, Message, Position, Rejection, payloads, unpack
from consumers.rows import raw_record_batch
from pipeline.events import DecodeError, decode_many, is_pack, position_event_id
from pipeline.pii import Pseudonymizer


@dataclass(eq=False)
class DecodedBatch:
    """A decoded batch. Payload ``j`` is line ``index[j]`` of ``messages[owner[j]]``.

    The valid payloads are numbered in order (``valid``: payload of each), and
    every per-event list follows that numbering.
    """

    messages: Sequence[Message]
    raws: list[bytes | None] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # decode_many's answer per payload
    valid: list[int] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)  # pipeline.events.FAST_TYPES structs
    ids: list[uuid.UUID] = field(default_factory=list)  # the id each is stored under (derived if it had none)
    id_ints: list[int] = field(default_factory=list)  # the same ids as integers (the dedup memory's keys)
    ts: list[float] = field(default_factory=list)  # epoch seconds (the model's ts.timestamp())
    micros: list[int] = field(default_factory=list)  # ts in microseconds since the epoch
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # index in pack
    pii: Pseudonymizer | None = None  # set: the events' ids are hashed, and so are the dead letters' (pipeline.pii)
    _arrow: pa.RecordBatch | None = None

    def position(self, v: int) -> Position:
        return self.partitions[v], self.offsets[v], self.indices[v]

    def payload(self, j: int) -> bytes | None:
        """The bytes of payload ``j`` (cut again from its message when the batch travelled without them), as sent."""
        if self.raws:
            return self.raws[j]
        return unpack(self.messages[self.owner[j]])[self.index[j]]

    def dead_letter(self, j: int, error: Rejection) -> DeadLetter:
        """Payload ``j`` as a dead letter: every dead letter of the worker's events is made here, so with a PII
        key its payload and key carry hashed ids only (:meth:`pipeline.pii.Pseudonymizer.payload`)."""
        message, value = self.messages[self.owner[j]], self.payload(j)
        if self.pii is not None:
            message = message._replace(key=self.pii.message_key(message.key))
            value = self.pii.payload(value)
        return DeadLetter(message, self.index[j], value, error)

    def arrow(self) -> pa.RecordBatch:
        """The valid events as one Arrow record batch in :data:`~consumers.rows.RAW_SCHEMA` (computed once)."""
        if self._arrow is None:
            self._arrow = raw_record_batch(self)
        return self._arrow

    def set_arrow(self, batch: pa.RecordBatch) -> None:
        """Replace the valid events' Arrow batch (same rows, in order): what the raw rows and partials read."""
        assert batch.num_rows == len(self.valid)
        self._arrow = batch

    def prepare(self) -> DecodedBatch:
        """Build the columns and the Arrow batch now (the worker does it off the event loop)."""
        if self.events:
            self.arrow()
        return self

    def portable(self) -> DecodedBatch:
        """This batch as it crosses from a decode process: columns (Arrow) and plain lists, no objects per event.

        The messages and the payload bytes stay behind (the receiver holds the
        messages: :meth:`attach` them); so do the event structs and their ids,
        which the Arrow batch holds.
        """
        self.prepare()
        results = [r if type(r) is DecodeError else None for r in self.results]
        return replace(self, messages=(), raws=[], results=results, events=[], ids=[])

    def attach(self, messages: Sequence[Message]) -> DecodedBatch:
        """Give a portable batch back the messages it was decoded from."""
        self.messages = messages
        return self


PortableMessages = tuple[list[int], list[int], list[bytes | None], list[bool]]  # partitions, offsets, values, packs


def portable_messages(messages: Sequence[Message]) -> PortableMessages:
    """What decoding needs of the messages, as plain lists: they pickle far faster than Message tuples."""
    return (
        [m.partition for m in messages],
        [m.offset for m in messages],
        [m.value for m in messages],
        [bool(m.headers) and is_pack(m.headers) for m in messages],
    )


def decode_batch(
    messages: Sequence[Message], max_event_bytes: int, topic: str = "", pii: Pseudonymizer | None = None
) -> DecodedBatch:
    """Decode and validate every event of a batch, in this process (see :class:`DecodedBatch`)."""
    return decode_messages(portable_messages(messages), max_event_bytes, topic, pii).attach(messages)


def decode_portable(
    messages: PortableMessages, max_event_bytes: int, topic: str = "", pii: Pseudonymizer | None = None
) -> DecodedBatch:
    """:func:`decode_messages` in a decode process: the answer is :meth:`DecodedBatch.portable`."""
    return decode_messages(messages, max_event_bytes, topic, pii).portable()


def decode_messages(
    messages: PortableMessages, max_event_bytes: int, topic: str = "", pii: Pseudonymizer | None = None
) -> DecodedBatch:
    """Decode and validate every event of messages given as :func:`portable_messages` (no messages attached).

    With ``pii`` the events' ``user_id`` and ``session_id`` are hashed here, before the columns, the
    partials or anything else reads them, and the batch hashes its dead letters (:meth:`DecodedBatch.dead_letter`).
    """
    partitions, offsets, values, packs = messages
    out = DecodedBatch((), pii=pii)
    if not any(packs):  # lone events only: payload j is message j
        out.raws, out.owner, out.index = list(values), list(range(len(values))), [0] * len(values)
    else:
        raws, owner, index = out.raws, out.owner, out.index
        for m, (value, pack) in enumerate(zip(values, packs, strict=True)):
            lines = payloads(value, pack)
            raws.extend(lines)
            owner.extend([m] * len(lines))
            index.extend(range(len(lines)))
    results = out.results = decode_many(out.raws, max_event_bytes)
    valid = out.valid = [j for j, r in enumerate(results) if type(r) is not DecodeError]
    if not valid:
        return out
    good: list[Any] = [results[j] for j in valid]
    events = out.events = list(map(itemgetter(0), good))
    if pii is not None:
        pii.events(events)
    out.ts = list(map(itemgetter(1), good))
    out.micros = list(map(itemgetter(2), good))
    owners = [out.owner[j] for j in valid]
    out.partitions = list(map(partitions.__getitem__, owners))
    out.offsets = list(map(offsets.__getitem__, owners))
    out.indices = list(map(out.index.__getitem__, valid))
    ids = out.ids = list(map(_EVENT_ID, events))
    for v, event_id in enumerate(ids):
        if event_id is UNSET:  # an event that came without one: its id is derived from its position
            ids[v] = position_event_id(topic, out.partitions[v], out.offsets[v], out.indices[v])
    out.id_ints = [u.int for u in ids]
    return out


_EVENT_ID = attrgetter("event_id")
