"""Every hostile body of ``tests/data/bad_requests`` gets its clear 4xx from the standards' routes, before Kafka.

The collector runs against a broker address nothing listens on: a refusal is
decided before anything is produced, so none of these requests may wait for
Kafka (a 503 here would mean the body got as far as the produce step).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from support.net import free_port

from pipeline.collector.app import create_app
from pipeline.settings import Settings

CORPUS = Path(__file__).resolve().parents[2] / "data" / "bad_requests"
MANIFEST = yaml.safe_load((CORPUS / "manifest.yaml").read_text())
KEY = "ck-3f9a1c"


def test_every_file_is_in_the_manifest():
    named = {spec.get("file", name) for name, spec in MANIFEST["requests"].items()}
    assert named == {p.name for p in CORPUS.iterdir()} - {"manifest.yaml"}


@pytest.mark.parametrize("name", sorted(MANIFEST["requests"]))
def test_hostile_request_is_refused_clearly(name: str):
    spec: dict[str, Any] = MANIFEST["requests"][name]
    body = (CORPUS / spec.get("file", name)).read_bytes()
    headers = {k: v.replace("$KEY", KEY) for k, v in spec["headers"].items()}
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        collector_write_keys=SecretStr(f"checkout={KEY}"),
        collector_ack_timeout_s=1.0,
        **MANIFEST["settings"],
    )

    async def main() -> tuple[int, dict[str, Any]]:
        async with TestClient(TestServer(create_app(settings))) as client:
            resp = await client.post(spec["route"].replace("$KEY", KEY), data=body, headers=headers)
            return resp.status, await resp.json()

    status, answer = asyncio.run(main())
    assert status == spec["status"], answer
    if "error" in spec:
        assert spec["error"] in answer["error"], answer
    if "detail" in spec:
        assert any(spec["detail"] in (d["field"] or "") + d["message"] for d in answer["details"]), answer
