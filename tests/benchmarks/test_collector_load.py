"""A bounded load test of the collector: it holds each product's rate, sheds the rest, acks only what it stored.

A real ``pulse collector`` process on a loopback port, the real broker, and
``CLIENTS`` connections posting ``BATCH``-event requests as fast as they are
answered for ``SECONDS``: ``checkout`` offers far more than its rate limit,
``search`` (one connection, paced) stays within it. The collector answers 202
once Kafka acked, 429 over a product's rate and 503 beyond
``PULSE_COLLECTOR_MAX_IN_FLIGHT`` requests at once, or beyond
``PULSE_COLLECTOR_MAX_IN_FLIGHT_PER_KEY`` of one sender. Afterwards the events
topic is read back whole and compared, by event id, with what was answered.

Asserted: every acknowledged event is on the topic, once; nothing of a request
refused with 429 or shed with 503 before producing is; every refusal carries
``Retry-After``; no other status is answered; checkout's acknowledged events
stay within its token bucket (rate x time + burst) and reach at least half of
it; search, within its rate, is never refused or shed while checkout floods. Speeds and latencies
are printed, never asserted (the machine is shared and noisy):

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/benchmarks/test_collector_load.py -q -s
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from support.collector import CHECKOUT_KEY, SEARCH_KEY, stored, with_keys
from support.net import free_port
from support.truth import make_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE_EPS = 1_000.0  # each product's limit
BURST_S = 2.0  # the bucket holds 2 s of it
MAX_IN_FLIGHT = 12
MAX_IN_FLIGHT_PER_KEY = 8
CLIENTS = 24  # checkout's connections
BATCH = 50
SECONDS = 8.0
SEARCH_EVERY_S = 0.1  # search: 50 events every 0.1 s = 500/s, half its limit


@dataclass
class Answer:
    product: str
    status: int
    reason: str
    seconds: float
    retry_after: str | None
    ids: list[str]


@dataclass
class Load:
    answers: list[Answer] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def batch(product: str, seed: int) -> list[dict]:
    events = make_events(BATCH, [product], seed=seed, spread_s=60)
    for e in events:
        e["event_id"] = str(uuid.uuid4())  # unique across the run, whatever the seed
    return events


async def client(session: aiohttp.ClientSession, url: str, product: str, key: str, until: float, pace: float,
                 load: Load, seed: int) -> None:  # fmt: skip
    n = 0
    while time.monotonic() < until:
        events = batch(product, seed * 100_000 + n)
        n += 1
        began = time.monotonic()
        async with session.post(url, data=json.dumps(events).encode(),
                                headers={"Authorization": f"Bearer {key}"}) as resp:  # fmt: skip
            body = await resp.json(content_type=None)
            took = time.monotonic() - began
        reason = "ok" if resp.status < 300 else str(body.get("error", ""))
        load.answers.append(Answer(product, resp.status, reason, took, resp.headers.get("Retry-After"),
                                   [e["event_id"] for e in events]))  # fmt: skip
        if pace:
            await asyncio.sleep(max(0.0, pace - took))


async def drive(url: str) -> Load:
    load = Load()
    connector = aiohttp.TCPConnector(limit=CLIENTS + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        load.started = time.monotonic()
        until = load.started + SECONDS
        await asyncio.gather(
            *(client(session, url, "checkout", CHECKOUT_KEY, until, 0.0, load, i) for i in range(CLIENTS)),
            client(session, url, "search", SEARCH_KEY, until, SEARCH_EVERY_S, load, CLIENTS),
        )
        load.ended = time.monotonic()
    return load


def start_collector(settings, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env(), "PULSE_COLLECTOR_PORT": str(port),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # fmt: skip
    with log.open("w") as out:  # a file, not a pipe: a line per request would fill a pipe and stall the collector
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "collector"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if status_of(f"http://127.0.0.1:{port}/readyz") == 200:
                return proc
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the collector did not get ready in 60 s")


def status_of(url: str) -> int:
    """GET ``url``: its status, an HTTP error's too (urllib raises for a 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


def test_the_collector_holds_its_rate_sheds_the_rest_and_acks_only_what_it_stored(settings, tmp_path):
    settings = with_keys(settings, collector_rate_limit_eps=RATE_EPS, collector_rate_burst_s=BURST_S,
                         collector_max_in_flight=MAX_IN_FLIGHT,
                         collector_max_in_flight_per_key=MAX_IN_FLIGHT_PER_KEY)  # fmt: skip
    port = free_port()
    proc = start_collector(settings, port, tmp_path / "collector.log")
    try:
        load = asyncio.run(drive(f"http://127.0.0.1:{port}/v1/events"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    answers, elapsed = load.answers, load.ended - load.started
    statuses = Counter((a.status, a.reason.split(";")[0][:40]) for a in answers)
    on_topic = [e["event_id"] for e in stored(settings)]

    assert {a.status for a in answers} <= {202, 429, 503}, statuses
    assert all(a.retry_after for a in answers if a.status in (429, 503)), "a refusal without Retry-After"
    acked = [i for a in answers if a.status == 202 for i in a.ids]
    unproduced = {i for a in answers if a.status == 429 or "in flight" in a.reason for i in a.ids}
    assert len(on_topic) == len(set(on_topic)), "an event is on the topic twice"
    assert set(acked) <= set(on_topic), f"{len(set(acked) - set(on_topic))} acknowledged events are not on the topic"
    assert not unproduced & set(on_topic), "a refused request's events reached the topic"
    assert set(on_topic) - set(acked) <= {i for a in answers if a.status == 503 for i in a.ids}  # only a failed ack
    checkout = sum(len(a.ids) for a in answers if a.product == "checkout" and a.status == 202)
    bucket = RATE_EPS * elapsed + RATE_EPS * BURST_S
    assert checkout <= bucket + BATCH, (checkout, bucket)  # the token bucket's bound (timing slack: one request)
    assert checkout >= 0.5 * bucket, (checkout, bucket)  # and it does admit its rate
    search = [a for a in answers if a.product == "search"]
    assert all(a.status == 202 for a in search), Counter(a.status for a in search)  # within its limit: never shed
    assert any(a.status == 429 for a in answers), statuses  # the excess was shed

    ok = [a.seconds for a in answers if a.status == 202]
    everything = [a.seconds for a in answers]
    print(
        f"\ncollector load, {CLIENTS}+1 connections x {BATCH}-event requests for {elapsed:.1f} s "
        f"(limit {RATE_EPS:.0f} events/s per product, burst {BURST_S:g} s, "
        f"in flight at most {MAX_IN_FLIGHT}, {MAX_IN_FLIGHT_PER_KEY} per sender):\n"
        f"  answered {len(answers) / elapsed:.0f} requests/s; acknowledged {len(ok) / elapsed:.0f} requests/s, "
        f"{len(acked) / elapsed:.0f} events/s (checkout {checkout / elapsed:.0f}/s against its {RATE_EPS:.0f}/s)\n"
        f"  latency p50/p99: acknowledged {1000 * pct(ok, 50):.1f}/{1000 * pct(ok, 99):.1f} ms, "
        f"all answers {1000 * pct(everything, 50):.1f}/{1000 * pct(everything, 99):.1f} ms\n"
        f"  answers: " + ", ".join(f"{s} {r or 'ok'}: {n}" for (s, r), n in sorted(statuses.items())) + "\n"
        f"  on the topic: {len(on_topic)} events = the {len(acked)} acknowledged"
        f" + {len(set(on_topic) - set(acked))} of failed acks"
    )
