"""The ceiling: the fastest Python read of the bench topic, with and without a JSON parse of every event.

Runs as a child process (``python -m pipeline.tools.bench.ceiling [--parse]``,
settings from ``PULSE_*``): confluent-kafka if it is installed (librdkafka
fetches in C threads), else aiokafka. It reads the topic from a cold consumer
group to the end of every partition and stores nothing. With ``--parse`` it
also parses every event with ``orjson.loads`` (packs split into lines) and
counts the events per type, so its totals can be checked like everyone's.

It times itself from its first message to the known end offset of the last
partition (a consumer group's join takes seconds on any broker and is not
reading; waiting for end-of-partition events would add a fetch wait) and
prints one line ``bench-result {json}`` with events, seconds, CPU seconds and
peak RSS of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from typing import Any

from pipeline.events import PACK_FORMAT, PACK_HEADER
from pipeline.settings import Settings

READY_LINE = "bench-ready"
RESULT_PREFIX = "bench-result "


def library() -> str:
    """Which client the ceiling uses here."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return "aiokafka"
    return "confluent-kafka"


class Tally:
    """Events seen (and, when parsing, their types), and when the first message arrived."""

    def __init__(self, parse: bool) -> None:
        self.parse = parse
        self.messages = 0
        self.events = 0
        self.by_type: Counter[str] = Counter()
        self.first_at: float | None = None
        self.first_cpu = 0.0
        self._loads: Any = None
        if parse:
            try:
                import orjson

                self._loads = orjson.loads
            except ImportError:  # the dev extra brings orjson; the stdlib parser is a slower stand-in
                self._loads = json.loads

    def start(self) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
            self.first_cpu = time.process_time()

    def add(self, value: bytes, pack: bool) -> None:
        self.messages += 1
        if not self.parse:
            self.events += value.count(b"\n") + 1 if pack else 1
            return
        lines = value.split(b"\n") if pack else (value,)
        loads, by_type = self._loads, self.by_type
        for line in lines:
            by_type[loads(line)["type"]] += 1
        self.events += len(lines)

    def result(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "events": self.events,
            "messages": self.messages,
            "by_type": dict(self.by_type),
            "seconds": now - (self.first_at or now),
            "cpu_seconds": time.process_time() - self.first_cpu,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }


def read_confluent(settings: Settings, tally: Tally, ends: dict[int, int]) -> None:
    from confluent_kafka import Consumer

    from pipeline.kafka.config import confluent_config

    consumer = Consumer(
        {**confluent_config(settings), "group.id": settings.consumer_group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "fetch.max.bytes": 64 * 1024 * 1024}
    )  # fmt: skip
    consumer.subscribe([settings.events_topic])
    print(READY_LINE, flush=True)
    left = {p for p, end in ends.items() if end > 0}
    pack_header = (PACK_HEADER, PACK_FORMAT)
    add = tally.add
    while left:
        messages = consumer.consume(num_messages=10_000, timeout=1.0)
        if not messages:
            continue
        tally.start()
        for msg in messages:
            if msg.error() is not None:
                raise RuntimeError(str(msg.error()))
            headers = msg.headers()
            add(msg.value(), bool(headers) and pack_header in headers)
            # The topic is complete before the ceiling starts: a partition is done at its known end offset.
            if msg.offset() + 1 >= ends[msg.partition()]:
                left.discard(msg.partition())
    consumer.close()


async def read_aiokafka(settings: Settings, tally: Tally, ends: dict[int, int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        settings.events_topic, bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
        auto_offset_reset="earliest", enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    print(READY_LINE, flush=True)
    try:
        partitions = consumer.partitions_for_topic(settings.events_topic) or set()
        tps = [TopicPartition(settings.events_topic, p) for p in partitions]
        left = {tp for tp in tps if ends.get(tp.partition, 0) > 0}
        while left:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batches.items():
                tally.start()
                for r in records:
                    tally.add(r.value, any(k == PACK_HEADER and v == PACK_FORMAT for k, v in r.headers))
                if records and records[-1].offset + 1 >= ends[tp.partition]:
                    left.discard(tp)
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.bench.ceiling")
    parser.add_argument("--parse", action="store_true", help="also orjson.loads every event")
    parser.add_argument("--ends", required=True, help="the topic's end offsets, partition:offset,... (known up front)")
    args = parser.parse_args(argv)
    settings = Settings()
    ends = {int(p): int(o) for p, o in (item.split(":") for item in args.ends.split(","))}
    tally = Tally(args.parse)
    if library() == "confluent-kafka":
        read_confluent(settings, tally, ends)
    else:
        asyncio.run(read_aiokafka(settings, tally, ends))
    print(RESULT_PREFIX + json.dumps(tally.result()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
