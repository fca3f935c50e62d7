"""The Kafka side of a batch: messages, the positions of their events, and the events that failed.

A message holds one JSON event, or a *pack* of newline-separated events
(header ``pulse.format: ndjson``); every event has a :data:`Position`
(partition, offset, index in pack) that names it for dedup, derived ids and
dead letters. Nothing here decodes JSON: :mod:`consumers.decode` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pipeline.events import DecodeError, is_pack, split_pack

Position = tuple[int, int, int]  # (partition, offset, index in pack) of one event
Rejection = DecodeError  # why an event is not stored: undecodable, invalid, refused by the store, out of time bounds


class Message(NamedTuple):
    """The parts of a Kafka message that ingestion needs."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: object = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One event that is not stored: its message, its index inside a pack (0 for a lone event), its bytes, why.

    ``error`` is a :class:`pipeline.events.DecodeError` whatever the stage that
    refused the event (decoding, validation, the time bounds, the store): its
    ``stage`` and ``reason`` say which.
    """

    message: Message
    index: int
    value: bytes | None
    error: Rejection


def unpack(msg: Message) -> list[bytes | None]:
    """The event payloads of a message: the lines of a pack, or the message itself."""
    return payloads(msg.value, is_pack(msg.headers))


def payloads(value: bytes | None, pack: bool) -> list[bytes | None]:
    """The event payloads of a message's value: its lines if ``pack``, else the value itself."""
    if value is not None and pack:
        lines: list[bytes | None] = list(split_pack(value))
        return lines or [None]  # a pack of no events is one bad message, not none
    return [value]
