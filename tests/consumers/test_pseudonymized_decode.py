"""With a PII key, a decoded batch holds hashed ids only: in its rows, its columns and its dead letters."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from support.truth import make_event

from consumers.aggregate import aggregate_decoded
from consumers.decode import decode_batch
from consumers.dedup import SeenIds, Watermarks
from consumers.records import Message
from pipeline.pii import Pseudonymizer

KEY = b"pii-test-key-0123456789"


def _messages() -> tuple[list[Message], list[dict]]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    events = [make_event(rng, "checkout", now) for _ in range(50)]
    events.append(make_event(rng, "checkout", now.replace(year=now.year + 1)))  # too far ahead: dead-lettered
    msgs = [Message(0, i, f"checkout:{e['user_id']}".encode(), json.dumps(e).encode()) for i, e in enumerate(events)]
    bad = {"type": "request", "product": "checkout", "user_id": "raw-user-bad", "session_id": "raw-session-bad"}
    msgs.append(Message(0, len(msgs), b"checkout:raw-user-bad", json.dumps(bad).encode()))  # invalid: no version, ts
    msgs.append(Message(0, len(msgs), b"checkout:raw-user-cut", b'{"user_id": "raw-user-cut", '))  # not JSON
    return msgs, events


def _batch(pii: Pseudonymizer | None):
    msgs, events = _messages()
    decoded = decode_batch(msgs, 64 * 1024, "pulse.events", pii).prepare()
    return decoded, aggregate_decoded(decoded, SeenIds(10_000), Watermarks(300), now_s=datetime.now(UTC).timestamp(),
                                      max_future_skew_s=3600), events  # fmt: skip


def test_rows_and_dead_letters_hold_hashed_ids_only():
    pii = Pseudonymizer(KEY)
    decoded, result, events = _batch(pii)
    stored = decoded.arrow().to_pydict()
    assert stored["user_id"] == [pii.hash_id(e["user_id"]) for e in events]
    assert stored["session_id"] == [pii.hash_id(e["session_id"]) for e in events]
    assert len(result.dead) == 3
    raw_ids = {e["user_id"] for e in events} | {e["session_id"] for e in events}
    raw_ids |= {"raw-user-bad", "raw-session-bad", "raw-user-cut"}
    for letter in result.dead:
        for raw in raw_ids:
            assert raw.encode() not in (letter.value or b"") + (letter.message.key or b"")
    future = json.loads(result.dead[0].value)
    assert future["user_id"] == pii.hash_id(events[50]["user_id"])
    assert result.dead[0].message.key == b"checkout:" + pii.hash_id(events[50]["user_id"]).encode()


def test_without_a_key_ids_are_stored_as_sent():
    decoded, result, events = _batch(None)
    assert decoded.arrow().to_pydict()["user_id"] == [e["user_id"] for e in events]
    assert b"raw-user-cut" in result.dead[-1].value


def test_a_portable_batch_hashes_its_dead_letters_on_the_worker_side():
    from consumers.decode import decode_portable, portable_messages

    pii = Pseudonymizer(KEY)
    msgs, _ = _messages()
    decoded = decode_portable(portable_messages(msgs), 64 * 1024, "pulse.events", pii).attach(msgs)
    letter = decoded.dead_letter(len(msgs) - 1, decoded.results[-1])
    assert b"raw-user-cut" not in letter.value and b"raw-user-cut" not in letter.message.key
