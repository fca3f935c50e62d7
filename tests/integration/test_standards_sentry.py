"""Sentry envelopes driven by sentry-sdk (release health in session and request mode, errors) on the real broker."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support.collector import CHECKOUT_KEY, serve, stored, with_keys
from support.sdk_traffic import sentry_app

from pipeline import telemetry

pytestmark = pytest.mark.integration


def unmapped(kind: str) -> float:
    labels = {"source": "sentry", "kind": kind}
    return telemetry.REGISTRY.get_sample_value("pulse_collector_unmapped_total", labels) or 0


def test_sentry_sdk_release_health_and_errors(settings):
    s = with_keys(settings)

    async def scenario(client: TestClient) -> list[str]:
        dsn = f"http://{CHECKOUT_KEY}@127.0.0.1:{client.port}/42"
        return await asyncio.to_thread(sentry_app, dsn)

    handled_id, crash_id, request_crash_id = serve(s, scenario)
    got = stored(s)
    assert {(e["product"], e["version"], e["environment"]) for e in got} == {("checkout", "1.4.0", "staging")}
    by_id = {e["event_id"]: e for e in got}
    errors = [e for e in by_id.values() if e["type"] == "error"]
    assert sorted((e["kind"], e["handled"]) for e in errors) == [
        ("LookupError", False), ("RuntimeError", False), ("ValueError", True)]  # fmt: skip
    ids = {e["kind"]: e["event_id"].replace("-", "") for e in errors}
    assert (ids["ValueError"], ids["RuntimeError"], ids["LookupError"]) == (handled_id, crash_id, request_crash_id)
    assert {e["user_id"] for e in errors} == {"u-7"}

    app = [e for e in by_id.values() if e["type"].startswith("session") and e["session_id"]]
    started = [e for e in app if e["type"] == "session_started"]
    ended = sorted((e["status"], e["errors"]) for e in app if e["type"] == "session_ended")
    assert len(started) == 2  # each session was sent more than once (with its error, at its end): once each
    assert ended == [("crashed", 1), ("exited", 1)]
    assert all(e["user_id"] == "u-7" for e in app)

    requests = [e for e in by_id.values() if e["type"].startswith("session") and not e["session_id"]]
    assert sum(e["type"] == "session_started" for e in requests) == 3
    assert sorted(e["status"] for e in requests if e["type"] == "session_ended") == ["crashed", "exited", "exited"]


def test_envelope_contract(settings):
    """Unknown key 401, a bad item 400 naming it (nothing produced), unknown item types accepted, /store/ works."""
    s = with_keys(settings)
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={CHECKOUT_KEY}, sentry_version=7"}
    session = {"sid": "3f0e5b1a-1d2c-4e5f-9a8b-7c6d5e4f3a2b", "init": True, "started": "2026-12-01T10:00:00Z",
               "timestamp": "2026-12-01T10:05:00Z", "status": "exited", "duration": 300.5,
               "attrs": {"release": "checkout@2.0.0"}}  # fmt: skip

    def envelope(*items: tuple[dict[str, Any], dict[str, Any] | bytes]) -> bytes:
        lines = [json.dumps({"sent_at": "2026-12-01T10:05:01Z"}).encode()]
        for header, payload in items:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            lines += [json.dumps({**header, "length": len(body)}).encode(), body]
        return b"\n".join(lines) + b"\n"

    good = envelope(
        ({"type": "session"}, session),
        ({"type": "profile_chunk"}, b"\x00\x01binary\n"),
        ({"type": "made-up-" + "x" * 40}, b"{}"),  # counted as item_other: no label per client-chosen name
    )
    bad = envelope(({"type": "session"}, {**session, "sid": "other", "status": "exited", "errors": -1}))

    async def scenario(client: TestClient) -> dict[str, Any]:
        out: dict[str, Any] = {}
        resp = await client.post("/api/42/envelope/", data=good, headers={"X-Sentry-Auth": "Sentry sentry_key=no"})
        out["401"] = resp.status
        resp = await client.post("/api/42/envelope/", data=bad, headers=auth)
        out["400"] = resp.status, await resp.json()
        resp = await client.post("/api/42/envelope/", data=b"not json\n{}", headers=auth)
        out["bad_header"] = resp.status, await resp.json()
        resp = await client.post(
            "/api/42/envelope/", data=gzip.compress(good), headers={**auth, "Content-Encoding": "gzip"}
        )
        out["good"] = resp.status
        store = {"event_id": "a" * 32, "release": "checkout@2.0.0", "timestamp": 1764583200.5,
                 "exception": {"values": [{"type": "KeyError", "value": "'sku'"}]}}  # fmt: skip
        resp = await client.post(f"/api/42/store/?sentry_key={CHECKOUT_KEY}", json=store)
        out["store"] = resp.status, await resp.json()
        return out

    before, other_before = unmapped("item_profile_chunk"), unmapped("item_other")
    out = serve(s, scenario)
    assert out["401"] == 401
    status, body = out["400"]
    assert status == 400 and [(d["item"], d["field"]) for d in body["details"]] == [
        ("items[0]", "session_ended.errors")]  # fmt: skip
    assert out["bad_header"][0] == 400 and "envelope header" in out["bad_header"][1]["error"]
    assert out["good"] == 200
    assert out["store"] == (200, {"id": "a" * 32})
    assert (unmapped("item_profile_chunk"), unmapped("item_other")) == (before + 1, other_before + 1)
    got = stored(s)
    assert sorted(e["type"] for e in got) == ["error", "session_ended", "session_started"]
    [ended] = [e for e in got if e["type"] == "session_ended"]
    assert (ended["status"], ended["duration_ms"], ended["version"]) == ("exited", 300500.0, "2.0.0")
    [error] = [e for e in got if e["type"] == "error"]
    assert (error["kind"], error["handled"], error["event_id"].replace("-", "")) == ("KeyError", True, "a" * 32)
