"""What the emitter tests share: a dead broker's settings, a recording on_error, reading packs back from a topic."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from kafka import KafkaConsumer

from pipeline.events import PACK_FORMAT, PACK_HEADER
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings


def dead_broker() -> Settings:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Settings(kafka_bootstrap=f"127.0.0.1:{port}")


def body(user: str = "u-1", **kw: object) -> dict[str, object]:
    return {"type": "session_started", "product": "checkout", "version": "1.0", "ts": datetime.now(UTC),
            "user_id": user, **kw}  # fmt: skip


class Errors:
    """An on_error callback that records what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[BaseException, Sequence[bytes]]] = []
        self.seen = threading.Event()

    def __call__(self, exc: BaseException, events: Sequence[bytes]) -> None:
        self.calls.append((exc, events))
        self.seen.set()

    def of(self, kind: type[BaseException]) -> list[BaseException]:
        return [exc for exc, _ in self.calls if isinstance(exc, kind)]


def read_topic(settings: Settings, topic: str, want: int, timeout_s: float = 30) -> list:
    consumer = KafkaConsumer(
        topic, auto_offset_reset="earliest", consumer_timeout_ms=2000, **kafka_python_config(settings)
    )
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        got.extend(consumer)
    consumer.close()
    return got


def events_of(messages: list) -> list[bytes]:
    out: list[bytes] = []
    for m in messages:
        assert dict(m.headers).get(PACK_HEADER) == PACK_FORMAT
        out.extend(m.value.split(b"\n"))
    return out
