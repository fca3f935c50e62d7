"""A collector on a loopback port for tests that drive it with a real client, and the events it put on the topic."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from pipeline.collector.app import create_app
from pipeline.events import PACK_FORMAT, PACK_HEADER, split_pack
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings

T = TypeVar("T")

CHECKOUT_KEY = "ck-3f9a1c"
SEARCH_KEY = "se-77b2=="
WRITE_KEYS = f"checkout={CHECKOUT_KEY}, search={SEARCH_KEY}"


def with_keys(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(update={"collector_write_keys": SecretStr(WRITE_KEYS), **update})


def serve(settings: Settings, scenario: Callable[[TestClient], Awaitable[T]]) -> T:
    """Serve a collector for ``settings`` on a free 127.0.0.1 port and run ``scenario`` against it.

    An SDK's calls block: a scenario runs them with ``asyncio.to_thread`` so the
    collector keeps serving on this loop meanwhile.
    """

    async def main() -> T:
        async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


def base_url(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


def stored(settings: Settings) -> list[dict[str, Any]]:
    """Every event on the events topic, from the beginning up to the current end offsets."""
    topic = settings.events_topic
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **kafka_python_config(settings))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "timed out reading the events topic"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    assert (PACK_HEADER, PACK_FORMAT) in list(record.headers)
                    events.extend(json.loads(line) for line in split_pack(record.value))
        return events
    finally:
        consumer.close()
