"""The alerts room's tables in the store: their DDL, as migration 3 of the store's history.

* ``alert_events`` - the alert evaluator's state: a row per evaluation of an
  alert that is not inactive and per transition (``transition`` names it, empty
  for a progress row). The newest row per ``fingerprint`` is the alert's state,
  ``keep_firing_for`` progress (``last_match_at``) and notification bookkeeping
  (``last_sent_at``) included, so a restart neither re-notifies nor forgets.
* ``product_scorecards`` - per product, dimension (and ``composite``) and
  evaluation time: score, floor, days below it, trend, the redesign-candidate
  flag and its evidence (JSON).
* ``release_verdicts`` - a release against its predecessor over equal bake
  time, one row per signal: both values, the test, its p-value and the verdict.

The statements and the version are those the core's migrations carried before
the rooms owned their tables, so a store migrated then records the same history.
The application layer composes these with the core's
(``pipeline.usecases.schema.MIGRATIONS``); :func:`pipeline.clickhouse.migrate` applies them.
"""

from __future__ import annotations

from pipeline.clickhouse import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        3,
        "alert_events, product_scorecards, release_verdicts",
        (
            # Every evaluation result of an alert that is not inactive, and every transition. The newest row of a
            # fingerprint is its state: a restarted evaluator reads it back (keep_firing_for progress included).
            """
            CREATE TABLE IF NOT EXISTS {db}.alert_events (
                at DateTime64(3, 'UTC'),
                rule_group LowCardinality(String),
                alertname LowCardinality(String),
                fingerprint String,
                labels Map(String, String),
                annotations Map(String, String),
                state LowCardinality(String),
                transition LowCardinality(String),
                value Float64,
                active_at DateTime64(3, 'UTC'),
                fired_at DateTime64(3, 'UTC'),
                last_match_at DateTime64(3, 'UTC'),
                resolved_at DateTime64(3, 'UTC'),
                last_sent_at DateTime64(3, 'UTC'),
                evidence String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (alertname, fingerprint, at)
            """,
            # A product's score per dimension (and 'composite') at one evaluation; the evidence says why.
            """
            CREATE TABLE IF NOT EXISTS {db}.product_scorecards (
                at DateTime64(3, 'UTC'),
                product LowCardinality(String),
                dimension LowCardinality(String),
                score Float64,
                floor Float64,
                below_floor UInt8,
                days_below UInt16,
                trend Float64,
                redesign_candidate UInt8,
                evidence String
            ) ENGINE = ReplacingMergeTree
            ORDER BY (product, at, dimension)
            """,
            # A new version against its predecessor over equal bake time, one row per signal.
            """
            CREATE TABLE IF NOT EXISTS {db}.release_verdicts (
                at DateTime64(3, 'UTC'),
                product LowCardinality(String),
                version LowCardinality(String),
                baseline_version LowCardinality(String),
                released_at DateTime64(3, 'UTC'),
                bake_s UInt32,
                signal LowCardinality(String),
                candidate_value Float64,
                baseline_value Float64,
                test LowCardinality(String),
                p_value Float64,
                verdict LowCardinality(String),
                severe UInt8,
                evidence String
            ) ENGINE = ReplacingMergeTree(at)
            ORDER BY (product, version, signal)
            """,
        ),
        # On a cluster (pipeline.clickhouse.cluster): an alert's rows, and so its newest row, on one shard.
        shard_by={"alert_events": "cityHash64(fingerprint)"},
    ),
)
