"""A ClickHouse store filled with a synthetic scenario, without Kafka: for tests of what reads the store.

Alert rules, scorecards, release verdicts and dashboards read what the worker
wrote. These tests need weeks of realistic data, not the broker, so this module
runs the worker's own write path - :func:`consumers.aggregate.aggregate_decoded`
and :class:`consumers.sink.ClickHouseSink` - synchronously over
:func:`pipeline.tools.synth.traffic`, in batches like the worker's. The rows are
the rows a worker would have stored from the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from consumers.dedup import SeenIds, Watermarks
from consumers.records import Message
from consumers.sink import ClickHouseSink
from pipeline import clickhouse
from pipeline.events import Event, encode_event
from pipeline.settings import Settings
from pipeline.tools import synth
from pipeline.usecases import schema
from support.batch_views import aggregate_batch

BATCH = 5_000


def fixed_end() -> datetime:
    """Yesterday 13:00 UTC: where scenario tests end their data.

    Synthetic traffic follows the hour of the UTC day, so a scenario that ends
    at a fixed hour holds the same data - and gets the same verdicts - at
    whatever time the tests run; one that ends "now" does not.
    """
    return datetime.now(UTC).replace(hour=13, minute=0, second=0, microsecond=0) - timedelta(days=1)


@dataclass(frozen=True)
class Scenario:
    """A filled store: the client, its database, the traffic config and the scenario's ground truth."""

    settings: Settings
    client: Client
    database: str
    cfg: synth.TrafficConfig
    story: dict[str, str]
    events: int


def write_events(client: Client, database: str, events: Iterable[Event], partitions: int = 4) -> int:
    """Store events the way the worker does (raw rows, minute partials, breakdowns); returns how many."""
    sink = ClickHouseSink(client, database)
    seen, watermarks = SeenIds(0), Watermarks(10**9)  # no dedup memory needed: synthetic ids are unique
    offsets = [0] * partitions
    n = 0
    for chunk in _chunks(events, BATCH):
        messages = []
        for ev in chunk:
            p = ev.event_id.int % partitions
            messages.append(Message(p, offsets[p], None, encode_event(ev)))
            offsets[p] += 1
        batch = aggregate_batch(
            messages, seen, watermarks, now_s=datetime.now(UTC).timestamp(), max_event_bytes=1 << 20,
            max_future_skew_s=3600,
        )  # fmt: skip
        assert not batch.dead, batch.dead[:3]
        sink.write_raw(batch.raw_rows)
        sink.write_partials(batch)
        n += len(chunk)
    return n


def write_releases(client: Client, database: str, cfg: synth.TrafficConfig) -> None:
    rows = [[r.product, r.version, r.released_at, r.channel, r.rollout_pct, r.commit] for r in synth.releases(cfg)]
    columns = ["product", "version", "released_at", "channel", "rollout_pct", "commit"]
    client.insert(f"{database}.releases", rows, column_names=columns)


def open_scenario(
    data_dir: Path,
    *,
    scenario: str = "regression_and_decay",
    days: float = 14,
    users_per_product: int = 300,
    end: datetime | None = None,
    seed: int = 7,
    **cfg: Any,
) -> Scenario:
    """Open an embedded store under ``data_dir`` and fill it with ``days`` of the scenario ending at ``end``.

    Close it with :func:`close_scenario` (one embedded store per process at a time).
    About 16k events per 100 users and week.
    """
    settings = Settings(data_dir=data_dir)
    end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    traffic_cfg = synth.TrafficConfig(
        seed=seed, start=end - timedelta(days=days), span=timedelta(days=days), scenario=scenario,
        users_per_product=users_per_product, **cfg,
    )  # fmt: skip
    client = clickhouse.connect(settings)
    schema.migrate(client, settings)
    n = write_events(client, settings.clickhouse_database, synth.traffic(traffic_cfg))
    write_releases(client, settings.clickhouse_database, traffic_cfg)
    return Scenario(settings, client, settings.clickhouse_database, traffic_cfg, synth.scenario_story(traffic_cfg), n)


def close_scenario(scenario: Scenario) -> None:
    scenario.client.close()
    clickhouse.release(scenario.settings)


class SharedStores:
    """Filled stores built once per test session and reopened by every module that reads them.

    Filling a store with weeks of traffic is the slow part of a scenario test,
    and several modules read the same scenario. chDB opens one folder per
    process at a time, so a store cannot stay open across modules: each module
    opens it, reads, and closes it again. (A copy of the folder will not open:
    the engine's metadata links into its own folder.) A test that writes into
    its store builds one of its own with :func:`open_scenario`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Scenario] = {}  # key -> the store as built (its client closed)

    def open(self, key: str, build: Callable[[Path], Scenario]) -> Scenario:
        """The store ``build`` fills (called once per ``key`` and session), opened again."""
        built = self._built.get(key)
        if built is None:
            built = build(self.root / f"store-{len(self._built)}")
            close_scenario(built)
            self._built[key] = built
        return replace(built, client=clickhouse.connect(built.settings))

    def scenario(self, **params: Any) -> Scenario:
        """:func:`open_scenario` with ``params``, built once per session."""
        return self.open(repr(sorted(params.items())), lambda folder: open_scenario(folder, **params))


def _chunks(items: Iterable[Event], n: int) -> Iterator[list[Event]]:
    chunk: list[Event] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
