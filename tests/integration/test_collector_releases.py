"""POST /v1/releases on the collector (a CI job announcing a release with a write key), on the real broker,
and the collector's error messages in the contract's own words."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient
from kafka import KafkaConsumer, TopicPartition
from support.collector import CHECKOUT_KEY, serve, with_keys

from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings


def _releases(settings: Settings) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, consumer_timeout_ms=3000,
                             **kafka_python_config(settings))  # fmt: skip
    try:
        tps = [TopicPartition(settings.releases_topic, p)
               for p in sorted(consumer.partitions_for_topic(settings.releases_topic) or ())]  # fmt: skip
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [json.loads(m.value) | {"_key": m.key.decode()} for m in consumer]
    finally:
        consumer.close()


async def _post(client: TestClient, body: Any, key: str = CHECKOUT_KEY) -> tuple[int, Any]:
    r = await client.post("/v1/releases", data=json.dumps(body), headers={"Authorization": f"Bearer {key}"})
    return r.status, await r.json()


def test_a_ci_job_announces_a_release_with_its_write_key(settings: Settings) -> None:
    s = with_keys(settings)

    async def scenario(client: TestClient) -> list[tuple[int, Any]]:
        return [
            await _post(client, {"product": "checkout", "version": "2.4.0", "rollout_pct": 25, "commit": "9f1c2ab"}),
            await _post(client, [{"product": "checkout", "version": "2.4.1", "released_at": "2026-11-25T10:00:00Z"}]),
            await _post(client, {"product": "search", "version": "1.0"}),  # not this key's product
            await _post(client, {"product": "checkout", "version": "2.4.2 beta"}),  # not an identifier
            await _post(client, {"product": "checkout"}),
            await _post(client, {"product": "checkout", "version": "3"}, key="wrong"),
        ]

    (ok1, b1), (ok2, b2), (forbidden, _), (bad, b4), (missing, b5), (unauthorized, _) = serve(s, scenario)
    assert (ok1, b1) == (202, {"accepted": 1}) and (ok2, b2) == (202, {"accepted": 1})
    assert forbidden == 403 and unauthorized == 401 and bad == 400 and missing == 400
    (err,) = b4["details"]
    assert err["field"] == "version" and "characters an identifier may not" in err["message"], b4
    assert any(d["field"] == "version" and d["message"] == "is required" for d in b5["details"]), b5
    stored = {r["version"]: r for r in _releases(s)}
    assert set(stored) == {"2.4.0", "2.4.1"}  # the refused requests produced nothing
    assert stored["2.4.0"]["rollout_pct"] == 25 and stored["2.4.0"]["commit"] == "9f1c2ab"
    assert stored["2.4.0"]["_key"] == "checkout" and stored["2.4.1"]["released_at"].startswith("2026-11-25T10:00")


def test_event_errors_are_in_our_words(settings: Settings) -> None:
    s = with_keys(settings)

    async def scenario(client: TestClient) -> Any:
        r = await client.post("/v1/events", data=json.dumps([{"product": "checkout"}, {"type": "nope"}]),
                              headers={"Authorization": f"Bearer {CHECKOUT_KEY}"})  # fmt: skip
        return r.status, await r.json()

    status, body = serve(s, scenario)
    assert status == 400
    text = json.dumps(body)
    assert "discriminator" not in text and "Unable to extract" not in text, text
    messages = {d["message"] for d in body["details"]}
    assert any(m.startswith('every event needs a "type": one of session_started') for m in messages), messages
    assert any("'nope' is not an event type" in m for m in messages), messages
