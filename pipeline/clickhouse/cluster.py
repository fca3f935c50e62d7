"""The cluster layout (``PULSE_CLICKHOUSE_CLUSTER``): single-node statements rewritten for a sharded cluster.

The single-node DDL in the migrations stays the one source of truth; with a
cluster configured, :func:`cluster_statements` turns each statement into its
cluster form instead of keeping a second copy that could drift:

* ``CREATE TABLE {db}.t ... ENGINE = XMergeTree(args)`` becomes a local table
  ``{db}.t_local ON CLUSTER`` with ``ReplicatedXMergeTree`` (same columns,
  sorting key, partitioning, TTL; the standard Keeper path
  ``/clickhouse/tables/{shard}/{database}/{table}`` and the ``{replica}``
  macro, which every server's ``<macros>`` defines), plus a ``Distributed``
  table under the old name ``{db}.t``. Every query of the catalog, the alerts
  and the dashboards reads the old names, so none of them changes.
* A materialized view reads the *local* ``events_local`` and writes the *local*
  target: a ``Distributed`` insert into ``events`` is forwarded to
  ``events_local`` on the row's shard, the view fires there, and its unique-user
  states land beside the events they summarise. A view on the Distributed table
  would fire only on the node that took the insert, and writing into the
  Distributed target would send the states through a second hop for nothing.
* ``ALTER TABLE {db}.t`` (a column added later) is applied to both tables.
* ``INSERT INTO ... SELECT`` (a backfill) reads and writes the Distributed names
  and is kept as it is: it is right on a cluster too.

Why shard by product (``cityHash64(product)``, the default for every table that
has a ``product`` column): every read the catalog makes is per product, and the
engines that make the pipeline exact only work within one shard.
``ReplacingMergeTree`` collapses a replayed row only into a row *of the same
part set* - two copies on two shards both survive, and ``FINAL`` (executed
shard by shard on a Distributed table) cannot see across shards. Every sorting
key here starts with ``product`` (or, for the tables without one, with the
column we shard by), so all copies of a row share a shard. The same holds for
``argMax``-style "newest row per key" reads and for the unique-user states the
views write: a product's day is summarised on one shard. A deterministic key
also keeps a retried insert on the shard that saw it the first time, where
``insert_deduplication_token`` can drop it. Tables without ``product`` name
their key in their migration (:attr:`Migration.shard_by`); a table with neither
is refused, so a new table has to choose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"  # ClickHouse macros, filled in by each server
LOCAL_SUFFIX = "_local"
DEFAULT_SHARD_KEY = "cityHash64(product)"

_NAME = r"(?P<db>\w+)\.(?P<table>\w+)"
_CREATE_TABLE = re.compile(r"^\s*CREATE TABLE IF NOT EXISTS " + _NAME + r"\s*\(", re.S)
_ENGINE = re.compile(r"\bENGINE = (?P<engine>\w*MergeTree)(?:\((?P<args>[^()]*)\))?")
_CREATE_VIEW = re.compile(
    r"^\s*CREATE MATERIALIZED VIEW IF NOT EXISTS " + _NAME + r" TO (?P<tdb>\w+)\.(?P<target>\w+) AS ", re.S
)
_ALTER = re.compile(r"^\s*ALTER TABLE " + _NAME + r"\s", re.S)
_INSERT_SELECT = re.compile(r"^\s*INSERT INTO \w+\.\w+\s+SELECT\b", re.S | re.I)
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ClusterLayoutError(ValueError):
    """A statement the cluster layout does not know how to rewrite (a new shape of migration)."""


def check_cluster_name(cluster: str) -> str:
    """A cluster name as ``remote_servers`` spells it; it is quoted in every statement."""
    if not _CLUSTER_NAME.match(cluster):
        raise ValueError(f"cluster name {cluster!r} must be letters, digits, '_', '.' or '-'")
    return cluster


def local_name(table: str) -> str:
    """The shard-local table behind the Distributed ``table``."""
    return table + LOCAL_SUFFIX


def on_cluster(cluster: str) -> str:
    return f"ON CLUSTER '{check_cluster_name(cluster)}'"


def _columns(statement: str) -> set[str]:
    """The bare column names of a CREATE TABLE (for choosing a shard key), from its parenthesised list."""
    body = statement[statement.index("(") + 1 : statement.index(") ENGINE")]
    return {line.strip().split()[0].strip("`") for line in body.split(",\n") if line.strip()}


def shard_key(table: str, statement: str, shard_by: Mapping[str, str]) -> str:
    """The Distributed sharding key of ``table``: its migration's choice, else the product's hash."""
    if table in shard_by:
        return shard_by[table]
    if "product" in _columns(statement):
        return DEFAULT_SHARD_KEY
    raise ClusterLayoutError(
        f"table {table} has no product column: name its sharding key in its migration (Migration.shard_by)"
    )


def cluster_statements(statement: str, cluster: str, shard_by: Mapping[str, str] | None = None) -> list[str]:
    """The cluster form of one formatted single-node statement (see the module's docstring)."""
    shard_by = shard_by or {}
    where = on_cluster(cluster)
    if match := _CREATE_TABLE.match(statement):
        db, table = match["db"], match["table"]
        engine = _ENGINE.search(statement)
        if engine is None:
            raise ClusterLayoutError(f"table {table}: only *MergeTree engines have a replicated form")
        args = ", ".join(a for a in (f"'{KEEPER_PATH}'", "'{replica}'", (engine["args"] or "").strip()) if a)
        local = (
            statement[: match.start("table")]
            + local_name(table)
            + f" {where} "
            + statement[match.end("table") : engine.start()].lstrip()
            + f"ENGINE = Replicated{engine['engine']}({args})"
            + statement[engine.end() :]
        )
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {db}.{table} {where} AS {db}.{local_name(table)} "
            f"ENGINE = Distributed('{cluster}', '{db}', '{local_name(table)}', {shard_key(table, statement, shard_by)})"
        )
        return [local, distributed]
    if match := _CREATE_VIEW.match(statement):
        db = match["db"]
        select = statement[match.end() :]
        select = re.sub(rf"\bFROM {db}\.(\w+)\b", lambda m: f"FROM {db}.{local_name(m[1])}", select)
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{match['table']} {where} "
            f"TO {match['tdb']}.{local_name(match['target'])} AS {select}"
        ]
    if match := _ALTER.match(statement):
        rest = statement[match.end() :]
        db, table = match["db"], match["table"]
        return [f"ALTER TABLE {db}.{local_name(table)} {where} {rest}", f"ALTER TABLE {db}.{table} {where} {rest}"]
    if _INSERT_SELECT.match(statement):
        return [statement]
    raise ClusterLayoutError(f"no cluster form for statement: {statement.strip()[:120]!r}")


def bootstrap_statements(database: str, cluster: str) -> list[str]:
    """The database and the migration history, on every node.

    ``schema_migrations`` is replicated within a shard; a runner connected to
    another shard finds no record and applies the migrations again, which is
    harmless - every statement is ``IF NOT EXISTS`` and ``ON CLUSTER``.
    """
    where = on_cluster(cluster)
    return [
        f"CREATE DATABASE IF NOT EXISTS {database} {where}",
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations {where} "
        "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) "
        f"ENGINE = ReplicatedReplacingMergeTree('{KEEPER_PATH}', '{{replica}}') ORDER BY version",
    ]


def delete_statement(database: str, table: str, where: str, cluster: str | None) -> str:
    """A lightweight delete: of the table itself on one node, of its local tables on every shard of a cluster.

    A Distributed table cannot be deleted from; the rows live in the shards' local tables.
    """
    if cluster is None:
        return f"DELETE FROM {database}.{table} WHERE {where}"
    return f"DELETE FROM {database}.{local_name(table)} {on_cluster(cluster)} WHERE {where}"
