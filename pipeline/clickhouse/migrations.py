"""Versioned, idempotent ClickHouse schema migrations: the runner and the core's tables (``pulse db migrate``).

Each migration is a list of statements that are safe to run again
(``IF NOT EXISTS``); a migration is recorded in ``schema_migrations`` after all
its statements succeeded, so a crash midway re-runs it whole next time.
``{db}`` in a statement is the configured database.

Tables and why they look the way they do:

* ``events`` - raw events. ReplacingMergeTree whose sorting key ends in
  ``event_id``: a replayed or retried event collapses into one row (query with
  ``FINAL`` or ``uniqExact(event_id)`` for exact counts before merges).
  ``kafka_partition``/``kafka_offset``/``pack_index`` say where the row came from.
  Its columns are the event schema's table (:mod:`pipeline.schema`); a column
  added there needs a migration ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``.
* ``product_metrics_1m`` - per product x version x event-time minute partial
  aggregates, one row per (source partition, first offset of the batch that
  wrote it). A replayed batch rewrites the same keys (ReplacingMergeTree) and
  a worker that takes over a partition first deletes partial rows written past
  the committed offset, so totals stay exact across crashes. Read with FINAL.
* ``ingestion_errors`` - every dead-lettered event, keyed by its position.
* ``breakdown_metrics_1m`` - like ``product_metrics_1m``, per feature
  (``kind = 'feature'``: uses, successes, duration) and per conversion goal
  (``kind = 'goal'``: conversions, revenue).
* ``users_1d`` / ``feature_users_1d`` - unique-user sketches per product,
  version and day (``uniqCombined64``, HyperLogLog with 2^17 cells: ~0.3%
  standard error at 1M users, exact for small sets), filled by materialized
  views on ``events``. A replayed row adds nothing to a unique count, and days
  merge into weeks and months, so DAU, WAU, MAU and adoption come from them.
* ``releases`` - release announcements from the releases topic.

Each room owns the DDL of its own tables: these are the core's
(:data:`MIGRATIONS`); the alerts room keeps its tables in ``alerts/tables.py``,
and the application layer (``pipeline/usecases/schema.py``) composes every
room's migrations into the list a store is migrated with. Versions are global
and ascending across rooms, so a store records one history.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clickhouse_connect.driver.client import Client

from pipeline import schema

if TYPE_CHECKING:
    from pipeline.clickhouse.access import Reader

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """``statements`` are formatted with ``db`` and ``ttl_days`` (and, when ``access``, the reader's fields).

    An ``access`` migration manages users, roles or grants (:mod:`pipeline.clickhouse.access`):
    where the server does not allow that, or no reader password is set, it is skipped with one
    log line and left unrecorded, so a later run applies it.

    ``shard_by`` names the Distributed sharding key of a table without a ``product`` column
    (the cluster layout, :mod:`pipeline.clickhouse.cluster`); it is unused on a single node.
    """

    version: int
    name: str
    statements: tuple[str, ...]
    access: bool = False
    shard_by: Mapping[str, str] = field(default_factory=dict)

    def formatted(self, database: str, ttl_days: int, cluster: str | None = None) -> list[str]:
        """The statements to run: as written on a single node, rewritten for ``cluster`` when one is set."""
        plain = [s.format(db=database, ttl_days=int(ttl_days)) for s in self.statements]
        if cluster is None:
            return plain
        from pipeline.clickhouse.cluster import cluster_statements

        return [out for s in plain for out in cluster_statements(s, cluster, self.shard_by)]


# The raw events table; its columns come from the event schema's table (pipeline.schema), in its order.
_EVENTS_DDL = (
    """
            CREATE TABLE IF NOT EXISTS {db}.events (
                """
    + ",\n                ".join(schema.ddl_columns())
    + """
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(ts)
            ORDER BY (product, type, toStartOfHour(ts), event_id)
            TTL toDateTime(ts) + INTERVAL {ttl_days} DAY
            """
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "events, product_metrics_1m, ingestion_errors",
        (
            _EVENTS_DDL,
            """
            CREATE TABLE IF NOT EXISTS {db}.product_metrics_1m (
                product LowCardinality(String),
                version LowCardinality(String),
                minute DateTime('UTC'),
                src_partition UInt16,
                batch_start UInt64,
                events UInt64,
                late_events UInt64,
                sessions_started UInt64,
                sessions_ended UInt64,
                sessions_ok UInt64,
                sessions_exited UInt64,
                sessions_crashed UInt64,
                sessions_abnormal UInt64,
                sessions_errored UInt64,
                session_duration_ms_sum Float64,
                feature_uses UInt64,
                feature_successes UInt64,
                requests UInt64,
                request_errors UInt64,
                latency_ms_sum Float64,
                latency_bucket Array(Int16),
                latency_count Array(UInt64),
                errors UInt64,
                errors_unhandled UInt64,
                conversions UInt64,
                revenue Float64,
                nps_promoters UInt64,
                nps_passives UInt64,
                nps_detractors UInt64,
                csat_sum UInt64,
                csat_count UInt64,
                tickets_opened UInt64,
                tickets_resolved UInt64
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(minute)
            ORDER BY (product, version, minute, src_partition, batch_start)
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.ingestion_errors (
                kafka_topic LowCardinality(String),
                kafka_partition UInt16,
                kafka_offset UInt64,
                pack_index UInt32,
                stage LowCardinality(String),
                reason LowCardinality(String),
                detail String,
                payload String,
                at DateTime64(3, 'UTC')
            ) ENGINE = ReplacingMergeTree
            ORDER BY (kafka_topic, kafka_partition, kafka_offset, pack_index)
            """,
        ),
        # On a cluster: every copy of a dead letter comes from the same position, so the same partition.
        shard_by={"ingestion_errors": "kafka_partition"},
    ),
)

_USERS_SELECT = """
    SELECT product, version, toDate(ts) AS day,
        uniqCombined64State(user_id) AS users,
        uniqCombined64StateIf(user_id, type = 'session_ended') AS session_users,
        uniqCombined64StateIf(user_id, type = 'session_ended' AND status = 'crashed') AS crashed_users
    FROM {db}.events GROUP BY product, version, day
"""
_FEATURE_USERS_SELECT = """
    SELECT product, version, feature, toDate(ts) AS day, uniqCombined64State(user_id) AS users
    FROM {db}.events WHERE type = 'feature_used' GROUP BY product, version, feature, day
"""

MIGRATIONS += (
    Migration(
        2,
        "breakdown_metrics_1m, users_1d, feature_users_1d, releases",
        (
            """
            CREATE TABLE IF NOT EXISTS {db}.breakdown_metrics_1m (
                product LowCardinality(String),
                version LowCardinality(String),
                kind LowCardinality(String),
                name String,
                minute DateTime('UTC'),
                src_partition UInt16,
                batch_start UInt64,
                count UInt64,
                ok UInt64,
                value_sum Float64
            ) ENGINE = ReplacingMergeTree
            PARTITION BY toYYYYMM(minute)
            ORDER BY (product, kind, name, version, minute, src_partition, batch_start)
            """,
            """
            CREATE TABLE IF NOT EXISTS {db}.users_1d (
                product LowCardinality(String),
                version LowCardinality(String),
                day Date,
                users AggregateFunction(uniqCombined64, String),
                session_users AggregateFunction(uniqCombined64, String),
                crashed_users AggregateFunction(uniqCombined64, String)
            ) ENGINE = AggregatingMergeTree
            ORDER BY (product, version, day)
            """,
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.users_1d_mv TO {db}.users_1d AS " + _USERS_SELECT,
            """
            CREATE TABLE IF NOT EXISTS {db}.feature_users_1d (
                product LowCardinality(String),
                version LowCardinality(String),
                feature String,
                day Date,
                users AggregateFunction(uniqCombined64, String)
            ) ENGINE = AggregatingMergeTree
            ORDER BY (product, feature, version, day)
            """,
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.feature_users_1d_mv TO {db}.feature_users_1d AS "
            + _FEATURE_USERS_SELECT,
            # Backfill from rows stored before the views existed; unique states absorb repeats.
            "INSERT INTO {db}.users_1d " + _USERS_SELECT,
            "INSERT INTO {db}.feature_users_1d " + _FEATURE_USERS_SELECT,
            """
            CREATE TABLE IF NOT EXISTS {db}.releases (
                product LowCardinality(String),
                version LowCardinality(String),
                released_at DateTime64(3, 'UTC'),
                channel LowCardinality(String),
                rollout_pct Float32,
                commit String,
                received_at DateTime64(3, 'UTC') DEFAULT now64(3)
            ) ENGINE = ReplacingMergeTree(received_at)
            ORDER BY (product, version)
            """,
        ),
    ),
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_versions(migrations: Sequence[Migration]) -> None:
    """Refuse a list whose versions are not unique and ascending (two rooms claiming one version, say)."""
    versions = [m.version for m in migrations]
    for earlier, later in zip(versions, versions[1:], strict=False):
        if later <= earlier:
            raise ValueError(f"migration versions must be unique and ascending: {versions}")


def migrate(
    client: Client,
    database: str,
    ttl_days: int = 400,
    migrations: Sequence[Migration] = MIGRATIONS,
    reader: Reader | None = None,
    cluster: str | None = None,
) -> list[int]:
    """Apply those of ``migrations`` not yet recorded; returns the versions applied now.

    ``migrations`` defaults to the core's tables; a store that also holds other
    rooms' tables is migrated with the composed list (``pipeline.usecases.schema``).
    ``reader`` is the read-only user an ``access`` migration creates (none: it is skipped).
    ``cluster`` (``PULSE_CLICKHOUSE_CLUSTER``) creates the cluster layout instead:
    replicated local tables and Distributed tables under the same names
    (:mod:`pipeline.clickhouse.cluster`); unset, every statement runs exactly as written.
    """
    if not _IDENT.match(database):
        raise ValueError(f"database name {database!r} is not a plain identifier")
    check_versions(migrations)
    if cluster is None:
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        client.command(
            f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
            "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
    else:
        from pipeline.clickhouse.cluster import bootstrap_statements

        for statement in bootstrap_statements(database, cluster):
            client.command(statement)
    done = {row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    applied = []
    for migration in migrations:
        if migration.version in done:
            continue
        if migration.access and not _apply_access(client, migration, database, reader):
            continue
        for statement in () if migration.access else migration.formatted(database, ttl_days, cluster):
            client.command(statement)
        client.insert(
            f"{database}.schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"]
        )
        log.info("event=migration_applied version=%d name=%r", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def _apply_access(client: Client, migration: Migration, database: str, reader: Reader | None) -> bool:
    """Run an access migration's statements; False (logged, so left unrecorded) where it cannot apply."""
    from pipeline.clickhouse.access import refusal

    if reader is None:
        log.info(
            "event=migration_skipped version=%d name=%r reason=no_reader_password "
            "hint='set PULSE_CLICKHOUSE_READER_PASSWORD and run pulse db migrate'", migration.version, migration.name,
        )  # fmt: skip
        return False
    args = reader.format_args()
    for statement in migration.statements:
        try:
            client.command(statement.format(db=database, **args))
        except Exception as exc:
            code = refusal(exc)
            if code is None:
                raise
            log.info(
                "event=migration_skipped version=%d name=%r reason=server_refuses_access_management code=%s "
                "hint='create the read-only user by hand: README, Security'", migration.version, migration.name, code,
            )  # fmt: skip
            return False
    return True
