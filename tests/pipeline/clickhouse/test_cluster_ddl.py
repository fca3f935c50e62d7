"""The cluster layout (PULSE_CLICKHOUSE_CLUSTER) and the inserts' dedup token, checked on chDB.

chDB has no Keeper and no ``remote_servers``, so it cannot create a Replicated or
Distributed table: every cluster statement is parse-checked by the engine's own
parser (``formatQuery``, ``EXPLAIN AST``), and the layout it describes is compared
with the single-node one chDB does create. The dedup token is proven on a scratch
store whose tables keep a ``non_replicated_deduplication_window``: the engine drops
an insert the worker retried, and writes again what a takeover rolled back.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from pydantic import ValidationError
from support.truth import ground_truth, make_events

from consumers.ingest import Ingestor
from consumers.records import DeadLetter, Message
from consumers.sink import ClickHouseSink
from pipeline import clickhouse
from pipeline.clickhouse import cluster
from pipeline.clickhouse.tokens import dedup_token, offset_ranges
from pipeline.events import PACK_FORMAT, PACK_HEADER
from pipeline.settings import Settings
from pipeline.usecases.schema import MIGRATIONS

CLUSTER = "pulse_cluster"
TABLE_MIGRATIONS = [m for m in MIGRATIONS if not m.access]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Settings, Client]]:
    """An embedded store migrated the single-node way: the reference layout (one chDB path per process at a time)."""
    settings = Settings(data_dir=tmp_path)
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, migrations=TABLE_MIGRATIONS)
    yield settings, client
    client.close()
    clickhouse.release(settings)


def _format(client: Client, statement: str) -> str:
    return str(client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0])


def _cluster_layout() -> list[str]:
    return [s for m in TABLE_MIGRATIONS for s in m.formatted("pulse", 400, CLUSTER)]


def _single_layout() -> list[str]:
    return [s for m in TABLE_MIGRATIONS for s in m.formatted("pulse", 400)]


_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS pulse\.(\w+)(?: ON CLUSTER \S+)?\n\((.*?)\n\)\nENGINE = (.*)$", re.S)


def _tables(client: Client, statements: Sequence[str]) -> dict[str, tuple[list[str], str]]:
    """Per CREATE TABLE with a column list: its columns as the parser prints them, and its engine clause."""
    out = {}
    for statement in statements:
        match = _CREATE.match(_format(client, statement))
        if match:
            columns = [line.strip().rstrip(",") for line in match[2].splitlines() if line.strip()]
            out[match[1]] = (columns, match[3])
    return out


def test_single_node_statements_are_the_migrations_text_unchanged() -> None:
    for migration in TABLE_MIGRATIONS:
        assert migration.formatted("pulse", 30) == [s.format(db="pulse", ttl_days=30) for s in migration.statements]


def test_single_node_store_has_no_cluster_tables(engine: tuple[Settings, Client]) -> None:
    _, client = engine
    engines = dict(client.query("SELECT name, engine FROM system.tables WHERE database = 'pulse'").result_rows)
    assert not [name for name in engines if name.endswith("_local")]
    assert not [e for e in engines.values() if e.startswith(("Replicated", "Distributed"))]
    assert engines["events"] == "ReplacingMergeTree"


def test_every_cluster_statement_parses_and_keeps_on_cluster(engine: tuple[Settings, Client]) -> None:
    _, client = engine
    statements = _cluster_layout()
    for statement in statements:
        formatted = _format(client, statement)
        ast = client.command("EXPLAIN AST " + statement)
        assert ast, statement
        if not statement.lstrip().startswith("INSERT"):
            assert f"ON CLUSTER {CLUSTER}" in formatted, formatted
    for statement in cluster.bootstrap_statements("pulse", CLUSTER):
        assert f"ON CLUSTER {CLUSTER}" in _format(client, statement)
    delete = cluster.delete_statement("pulse", "product_metrics_1m", "src_partition = 1", CLUSTER)
    assert _format(client, delete).startswith(f"DELETE FROM pulse.product_metrics_1m_local ON CLUSTER {CLUSTER}")


def test_cluster_local_tables_match_the_single_node_tables(engine: tuple[Settings, Client]) -> None:
    """Same tables, same columns in the same order, the replicated form of the same engine and keys."""
    _, client = engine
    single = _tables(client, _single_layout())
    clustered = _tables(client, _cluster_layout())
    assert set(clustered) == {cluster.local_name(t) for t in single}
    for table, (columns, engine_clause) in single.items():
        local_columns, local_engine = clustered[cluster.local_name(table)]
        assert local_columns == columns
        name, _, rest = engine_clause.partition("\n")  # the engine, then PARTITION BY / ORDER BY / TTL
        base = re.match(r"(\w+)(?:\((.*)\))?$", name)
        assert base is not None
        keeper = f"'{cluster.KEEPER_PATH}', '{{replica}}'"
        args = keeper + (f", {base[2]}" if base[2] else "")
        assert local_engine == f"Replicated{base[1]}({args})\n{rest}"
    # the single-node store chDB created agrees with the parsed single-node statements
    stored = client.query(
        "SELECT table, groupArray(name) FROM (SELECT table, name FROM system.columns WHERE database = 'pulse' "
        "ORDER BY table, position) GROUP BY table"
    ).result_rows
    for table, names in stored:
        if table in single:
            assert [c.split()[0].strip("`") for c in single[table][0]] == names


def test_distributed_tables_keep_the_names_the_queries_read(engine: tuple[Settings, Client]) -> None:
    _, client = engine
    single = _tables(client, _single_layout())
    distributed = {}
    for statement in _cluster_layout():
        match = re.search(
            rf"TABLE IF NOT EXISTS pulse\.(\w+) ON CLUSTER {CLUSTER} AS pulse\.(\w+)\nENGINE = "
            rf"Distributed\('{CLUSTER}', 'pulse', '(\w+)', (.*)\)$",
            _format(client, statement),
        )
        if match:
            assert match[2] == match[3] == cluster.local_name(match[1])
            distributed[match[1]] = match[4]
    assert set(distributed) == set(single)
    for table, key in distributed.items():
        names = {c.split()[0].strip("`") for c in single[table][0]}
        used = set(re.findall(r"\b[a-z_]+\b", key)) - {"cityhash64"}
        assert used <= names and used, (table, key)
        if "product" in names:
            assert key == "cityHash64(product)", table
    assert distributed["alert_events"] == "cityHash64(fingerprint)"


def test_views_read_and_write_the_shards_local_tables(engine: tuple[Settings, Client]) -> None:
    _, client = engine
    views = [s for s in _cluster_layout() if "MATERIALIZED VIEW" in s]
    assert len(views) == 2
    for view in views:
        formatted = _format(client, view)
        target = re.search(r"\bTO pulse\.(\w+)", formatted)
        assert target is not None and target[1].endswith("_local")
        assert re.findall(r"\bFROM pulse\.(\w+)", formatted) == ["events_local"]


def test_a_statement_without_a_cluster_form_is_refused() -> None:
    with pytest.raises(cluster.ClusterLayoutError):
        cluster.cluster_statements("RENAME TABLE pulse.a TO pulse.b", CLUSTER)
    with pytest.raises(cluster.ClusterLayoutError, match="sharding key"):
        cluster.cluster_statements(
            "CREATE TABLE IF NOT EXISTS pulse.t (\n a UInt8\n) ENGINE = MergeTree ORDER BY a", CLUSTER
        )
    with pytest.raises(ValueError):
        cluster.on_cluster("prod'; DROP TABLE x")


def test_cluster_setting_is_read_and_needs_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(data_dir=tmp_path).clickhouse_cluster is None
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", "http://ch:8123/")
    monkeypatch.setenv("PULSE_CLICKHOUSE_CLUSTER", "prod")
    assert Settings(data_dir=tmp_path).clickhouse_cluster == "prod"
    monkeypatch.delenv("PULSE_CLICKHOUSE_DSN")
    with pytest.raises(ValidationError, match="needs a ClickHouse server"):
        Settings(data_dir=tmp_path)
    monkeypatch.setenv("PULSE_CLICKHOUSE_DSN", "http://ch:8123/")
    monkeypatch.setenv("PULSE_CLICKHOUSE_CLUSTER", "bad name")
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path)


# --- the dedup token ---------------------------------------------------------------------------------------------


def test_dedup_token_is_topic_partition_first_and_last_offset() -> None:
    positions = [(3, 105), (1, 7), (3, 100), (1, 9), (3, 199)]
    ranges = offset_ranges(positions)
    assert ranges == {1: (7, 9), 3: (100, 199)}
    assert dedup_token("pulse.events", ranges) == "pulse.events|1:7-9|3:100-199"
    assert dedup_token("pulse.events", offset_ranges(reversed(positions))) == dedup_token("pulse.events", ranges)
    assert dedup_token("pulse.events", {3: (100, 198)}) != dedup_token("pulse.events", {3: (100, 199)})
    assert dedup_token("other.events", ranges) != dedup_token("pulse.events", ranges)
    with pytest.raises(ValueError):
        dedup_token("pulse.events", {})


class LandsThenFails:
    """The real client, except that the next insert into each of ``fail`` lands, then reports a dropped connection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.fail: set[str] = set()
        self.tokens: list[tuple[str, str]] = []  # (table, token) of every insert, in order

    def _after(self, table: str, kw: dict[str, Any]) -> None:
        name = table.split(".")[-1]
        self.tokens.append((name, (kw.get("settings") or {}).get("insert_deduplication_token", "")))
        if name in self.fail:
            self.fail.discard(name)
            raise ConnectionError("the answer to an insert that landed was lost")

    def raw_insert(self, table: str, **kw: Any) -> Any:
        result = self.client.raw_insert(table, **kw)
        self._after(table, kw)
        return result

    def insert(self, table: str, *args: Any, **kw: Any) -> Any:
        result = self.client.insert(table, *args, **kw)
        self._after(table, kw)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


WINDOWED = ("events", "product_metrics_1m", "breakdown_metrics_1m", "ingestion_errors")


@pytest.fixture
def windowed(tmp_path: Path) -> Iterator[tuple[Settings, LandsThenFails]]:
    """A scratch store whose tables keep a dedup window, as the replicated tables of a cluster do."""
    settings = Settings(data_dir=tmp_path, store_retry_timeout_s=20, store_max_attempts=3)
    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database)
    for table in WINDOWED:
        client.command(f"ALTER TABLE pulse.{table} MODIFY SETTING non_replicated_deduplication_window = 1000")
    yield settings, LandsThenFails(client)
    client.close()
    clickhouse.release(settings)


def _packs(events: list[dict[str, Any]], partition: int = 0, per_pack: int = 50) -> list[Message]:
    header = [(PACK_HEADER, PACK_FORMAT)]
    return [
        Message(partition, 10 + i // per_pack, None,
                b"\n".join(json.dumps(e).encode() for e in events[i : i + per_pack]), header)
        for i in range(0, len(events), per_pack)
    ]  # fmt: skip


def _ingest(settings: Settings, store: LandsThenFails, messages: Sequence[Message]) -> None:
    async def send(batch: Sequence[DeadLetter]) -> None:
        return None

    async def run() -> None:
        sink = ClickHouseSink(store, settings.clickhouse_database)  # type: ignore[arg-type]
        await Ingestor(settings, sink, send).process(messages)

    asyncio.run(run())


def _stored(store: LandsThenFails) -> tuple[int, dict[str, int]]:
    """Raw rows and per-product event totals as stored, *without* FINAL: a duplicate part would show."""
    raw = store.client.query("SELECT count() FROM pulse.events").result_rows[0][0]
    rows = store.client.query("SELECT product, sum(events) FROM pulse.product_metrics_1m GROUP BY product")
    return raw, dict(rows.result_rows)


def test_a_retried_insert_that_had_landed_is_dropped_by_the_engine(windowed: tuple[Settings, LandsThenFails]) -> None:
    settings, store = windowed
    events = make_events(300, ["checkout", "search"], seed=7)
    for table in WINDOWED:  # a duplicate part stays visible until the test reads (not with a DELETE: a mutation)
        store.client.command(f"SYSTEM STOP MERGES pulse.{table}")
    store.fail = {"events", "product_metrics_1m"}  # each lands, then "fails": the worker inserts it again
    _ingest(settings, store, _packs(events))
    expected = {p: int(t["events"]) for p, t in ground_truth(events).items()}
    assert _stored(store) == (300, expected)
    token = "pulse.events|0:10-15"
    events_tokens = [t for table, t in store.tokens if table == "events"]
    partial_tokens = [t for table, t in store.tokens if table == "product_metrics_1m"]
    assert events_tokens == [token, token]
    assert len(partial_tokens) == 2 and partial_tokens[0] == partial_tokens[1]
    assert partial_tokens[0].startswith(token + "|term:")


def test_partials_rolled_back_by_a_takeover_are_written_again(windowed: tuple[Settings, LandsThenFails]) -> None:
    """The next owner replays the same offsets: its partials must land although the offsets' token is the same."""
    settings, store = windowed
    events = make_events(200, ["checkout", "search"], seed=8)
    messages = _packs(events)
    _ingest(settings, store, messages)  # a worker wrote the batch, then died before committing
    _ingest(settings, store, messages)  # the next owner deletes those partials and writes them again
    expected = {p: int(t["events"]) for p, t in ground_truth(events).items()}
    assert _stored(store) == (200, expected)
    raw_tokens = [t for table, t in store.tokens if table == "events"]
    assert raw_tokens == ["pulse.events|0:10-13"] * 2  # the second raw insert was dropped: 200 rows, not 400
    partial_tokens = [t for table, t in store.tokens if table == "product_metrics_1m"]
    assert len(set(partial_tokens)) == 2  # a new term: the rewritten partials are not taken for a retry
