"""The keyed hash of ids (pipeline.pii): deterministic across processes, keyed, and hiding ids in dead letters."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
from pydantic import SecretStr, ValidationError

from pipeline.pii import WITHHELD, Pseudonymizer, pseudonymizer
from pipeline.settings import Settings

KEY = b"k" * 24


def test_hash_is_keyed_blake2b_as_32_hex_and_the_same_in_every_process():
    expected = hashlib.blake2b(b"user-17", digest_size=16, key=KEY).hexdigest()
    assert Pseudonymizer(KEY).hash_id("user-17") == expected
    assert len(expected) == 32
    restarted = pickle.loads(pickle.dumps(Pseudonymizer(KEY)))  # what a decode process or a restart gets
    assert restarted.hash_id("user-17") == expected
    assert Pseudonymizer(b"x" * 24).hash_id("user-17") != expected  # another key: another hash


def test_repeated_ids_hash_the_same_and_distinct_ids_stay_distinct():
    p = Pseudonymizer(KEY)
    ids = [f"u{i}" for i in range(5000)]
    first = [p.hash_id(i) for i in ids]
    assert [p.hash_id(i) for i in ids] == first
    assert len(set(first)) == len(ids)
    assert p.hash_id("") == ""  # no session stays no session


def test_the_memory_is_not_what_crosses_to_a_process():
    p = Pseudonymizer(KEY)
    p.hash_id("alice")
    assert b"alice" not in pickle.dumps(p)
    assert "k" * 24 not in repr(p)


def test_dead_letter_payloads_carry_hashed_ids_only():
    p = Pseudonymizer(KEY)
    raw = json.dumps({"type": "request", "user_id": "alice", "session_id": "s-1", "latency_ms": "slow"}).encode()
    doc = json.loads(p.payload(raw))
    assert doc["user_id"] == p.hash_id("alice") and doc["session_id"] == p.hash_id("s-1")
    assert doc["latency_ms"] == "slow"
    assert json.loads(p.payload(b'{"user_id": 12345}'))["user_id"] == p.hash_id("12345")
    assert b"alice" not in p.payload(b'{"user_id":"bob","user_id":"alice"}')  # a repeated key keeps one, hashed
    assert p.payload(b'{"type":"x"}') == b'{"type":"x"}'  # nothing to hide: the bytes as sent
    for unreadable in (b'{"user_id": "alice", ', b"\xff\xfe alice", b'["alice"]', b'"alice"'):
        assert p.payload(unreadable) == WITHHELD
    assert p.payload(None) is None


def test_message_keys_keep_the_product_and_hash_the_user():
    p = Pseudonymizer(KEY)
    assert p.message_key(b"checkout:alice") == b"checkout:" + p.hash_id("alice").encode()
    assert p.message_key(b"alice") == p.hash_id("alice").encode()
    assert p.message_key(None) is None


def test_the_setting_is_a_secret_of_16_to_64_bytes_and_off_when_unset():
    assert pseudonymizer(Settings().pii_hash_key) is None
    s = Settings(pii_hash_key=SecretStr("k" * 24))
    assert "k" * 24 not in repr(s)
    assert pseudonymizer(s.pii_hash_key).hash_id("a") == Pseudonymizer(KEY).hash_id("a")
    for bad in ("short", "k" * 65):
        with pytest.raises(ValidationError):
            Settings(pii_hash_key=SecretStr(bad))
