"""Pseudonymous ids: ``user_id`` and ``session_id`` replaced by a keyed hash before anything is stored.

With ``PULSE_PII_HASH_KEY`` set, the worker never stores or dead-letters an
id as it was sent: every decoded event's ``user_id`` and ``session_id``, and
the same fields of a dead letter's payload and the user part of its Kafka key,
are replaced by :meth:`Pseudonymizer.hash_id` of them.

The hash is BLAKE2b in its keyed mode (RFC 7693 section 2.9: a MAC by design,
so no HMAC construction is needed; one C call, faster than HMAC-SHA256), with
a 16-byte digest written as 32 lowercase hex characters. 128 bits keep
collisions out of reach for any number of users a product has (the birthday
bound is 2^64), so unique-user counts are unchanged; the key makes the hashes
useless to whoever lacks it (no dictionary of likely ids can be hashed without
it). The hash depends on the key and the id alone: every worker, every
restart, every replay gives the same hash, so a user counted by two workers
or on two days is one user. An empty ``session_id`` (the event names no
session) stays empty, so "no session" is not counted as one. Rotating the key
starts every user afresh (a new hash): unique counts across the rotation count
each user twice.

Dead letters carry the bytes an event came in. A payload that parses as a JSON
object has its ``user_id`` and ``session_id`` members replaced by their hashes
(the object is re-encoded; strings are hashed as they are, any other JSON value
by its JSON text). A payload that does not parse as a JSON object is withheld
(replaced by :data:`WITHHELD`): its ids cannot be found in it, and "nothing is
stored un-hashed" is the promise. Only these two fields are pseudonymized: ids
a sender puts into ``properties`` are stored as sent.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

PII_FIELDS = ("user_id", "session_id")
HASH_HEX_CHARS = 32  # BLAKE2b with a 16-byte digest
WITHHELD = b'{"pulse.withheld":"payload is not a JSON object; withheld because PULSE_PII_HASH_KEY is set"}'
_MEMO_MAX = 200_000  # ids remembered with their hash (a batch repeats its users); the memory starts afresh past it


class Pseudonymizer:
    """Hashes ids with one key (see the module docstring); a memory of recent ids keeps repeated ones cheap."""

    __slots__ = ("_key", "_memo")

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= 64:  # BLAKE2b takes keys of at most 64 bytes; settings check it too
            raise ValueError("a PII hash key is 16 to 64 bytes")
        self._key = key
        self._memo: dict[str, str] = {}

    def __repr__(self) -> str:
        return "Pseudonymizer(key=***)"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:  # to a decode process: the key, not the memory of ids
        return Pseudonymizer, (self._key,)

    def hash_id(self, value: str) -> str:
        """The id's keyed hash (32 hex characters); the empty string stays empty."""
        hashed = self._memo.get(value)
        if hashed is None:
            if not value:
                return value
            hashed = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16, key=self._key).hexdigest()
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[value] = hashed
        return hashed

    def events(self, events: list[Any]) -> None:
        """Replace the ids of decoded events (structs of :data:`pipeline.fastdecode.FAST_TYPES`) in place."""
        memo, hash_id = self._memo, self.hash_id
        for ev in events:
            user, session = ev.user_id, ev.session_id
            ev.user_id = memo.get(user) or hash_id(user)
            if session:
                ev.session_id = memo.get(session) or hash_id(session)

    def payload(self, raw: bytes | None) -> bytes | None:
        """A dead letter's bytes with its ids hashed, or :data:`WITHHELD` when they are not a JSON object."""
        if not raw:
            return raw
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return WITHHELD
        if not isinstance(doc, dict):
            return WITHHELD
        if not any(name in doc for name in PII_FIELDS):
            return raw  # nothing to hide: keep the bytes exactly as they came (json.loads kept the last of repeats)
        for name in PII_FIELDS:
            if name in doc:
                value = doc[name]
                doc[name] = self.hash_id(value if isinstance(value, str) else json.dumps(value))
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")

    def message_key(self, key: bytes | None) -> bytes | None:
        """A Kafka key ``product:user`` (what the emitter and the collector send) with the user part hashed.

        A key of any other form is hashed whole: it may be an id.
        """
        if not key:
            return key
        text = key.decode("utf-8", "surrogateescape")
        product, sep, user = text.partition(":")
        if sep:
            return f"{product}:{self.hash_id(user)}".encode("utf-8", "surrogateescape")
        return self.hash_id(text).encode()


def pseudonymizer(key: Any) -> Pseudonymizer | None:
    """The pseudonymizer of ``PULSE_PII_HASH_KEY`` (a SecretStr), or None when it is unset (ids stored as sent)."""
    if key is None:
        return None
    return Pseudonymizer(key.get_secret_value().encode("utf-8"))
