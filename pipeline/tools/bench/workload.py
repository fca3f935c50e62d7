"""The benchmark's workload: one topic of synthetic events, produced once, and its ground truth.

Events come from :mod:`pipeline.tools.synth` (every event family, unique
``event_id``), are encoded once and partitioned the way the emitter does
(murmur2 of ``product:user``), so one user's events stay in order on one
partition. ``single`` sends one JSON event per message, as any other producer
would; ``pack`` sends the SDK's ndjson packs of up to 100 events per partition
with the header ``pulse.format: ndjson``. The topic is produced completely
before any contender starts, so no contender's clock includes producing.

:class:`Truth` is what a correct contender must have stored: the number of
events, their count per type and per event-time minute.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from kafka.partitioner.default import murmur2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from pipeline.events import PACK_FORMAT, PACK_HEADER, encode_event, partition_key
from pipeline.kafka.config import confluent_config, kafka_python_config
from pipeline.settings import Settings
from pipeline.tools import synth

Format = Literal["single", "pack"]
PACK_EVENTS = 100  # what the emitter sends (Emitter.pack_events)
PACK_HEADERS = [(PACK_HEADER, PACK_FORMAT)]


@dataclass
class Truth:
    """What a contender that lost and doubled nothing has stored."""

    events: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_minute: Counter[int] = field(default_factory=Counter)  # epoch seconds of the minute's start

    def add(self, kind: str, ts: datetime) -> None:
        self.events += 1
        self.by_type[kind] += 1
        self.by_minute[int(ts.timestamp()) // 60 * 60] += 1


@dataclass
class Workload:
    """Encoded messages per partition, ready to produce, and the truth they carry."""

    fmt: Format
    partitions: int
    messages: list[tuple[int, bytes, bytes]]  # (partition, key, value) in produce order
    truth: Truth

    @property
    def events(self) -> int:
        return self.truth.events


def traffic_config(n: int, seed: int = 11) -> synth.TrafficConfig:
    """``n`` events of the steady scenario over the last seven days (the size the old bench used)."""
    return synth.TrafficConfig(
        seed=seed,
        start=datetime.now(UTC) - timedelta(days=7),
        span=timedelta(days=7),
        users_per_product=max(5, n // (5 * 23 * 7) + 1),
        max_events=n,
    )


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (and the emitter) picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def generate(n: int, fmt: Format, partitions: int, console: Console) -> Workload:
    """Generate ``n`` synthetic events and encode them as ``fmt`` messages."""
    truth = Truth()
    messages: list[tuple[int, bytes, bytes]] = []
    open_packs: dict[int, tuple[bytes, list[bytes]]] = {}
    columns = (TextColumn("generating events"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("generate", total=n)
        for i, event in enumerate(synth.traffic(traffic_config(n))):
            truth.add(event.type, event.ts)
            key = partition_key(event)
            value = encode_event(event)
            p = partition_of(key, partitions)
            if fmt == "single":
                messages.append((p, key, value))
            else:
                pack = open_packs.setdefault(p, (key, []))[1]
                pack.append(value)
                if len(pack) >= PACK_EVENTS:
                    messages.append((p, open_packs.pop(p)[0], b"\n".join(pack)))
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        for p, (key, pack) in sorted(open_packs.items()):
            messages.append((p, key, b"\n".join(pack)))
    return Workload(fmt, partitions, messages, truth)


def produce(settings: Settings, topic: str, workload: Workload, console: Console) -> float:
    """Send every message of ``workload`` to ``topic`` and wait for the broker's acks; returns seconds taken."""
    headers = PACK_HEADERS if workload.fmt == "pack" else None
    started = time.monotonic()
    columns = (TextColumn("producing the topic"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("produce", total=len(workload.messages))
        for done in _send(settings, topic, workload.messages, headers):
            progress.update(task, completed=done)
    return time.monotonic() - started


def _send(
    settings: Settings, topic: str, messages: list[tuple[int, bytes, bytes]], headers: list[tuple[str, bytes]] | None
) -> Iterator[int]:
    try:
        from confluent_kafka import Producer
    except ImportError:
        yield from _send_kafka_python(settings, topic, messages, headers)
        return
    producer = Producer(
        {**confluent_config(settings), "acks": "all", "linger.ms": 20, "batch.size": 1_000_000,
         "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576}
    )  # fmt: skip
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for i, (partition, key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, value, key, partition=partition, headers=headers, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
            yield i
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"producing the bench topic failed: {left} unsent, errors {errors[:3]}")
    yield len(messages)


def _send_kafka_python(
    settings: Settings, topic: str, messages: list[tuple[int, bytes, bytes]], headers: list[tuple[str, bytes]] | None
) -> Iterator[int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        acks="all", linger_ms=20, batch_size=1024 * 1024, max_request_size=2 * 1024 * 1024,
        **kafka_python_config(settings),
    )  # fmt: skip
    try:
        futures = []
        for i, (partition, key, value) in enumerate(messages):
            futures.append(producer.send(topic, value=value, key=key, partition=partition, headers=headers))
            if i % 10_000 == 0:
                yield i
        producer.flush(120)
        for f in futures:
            f.get(timeout=120)
    finally:
        producer.close()
    yield len(messages)
