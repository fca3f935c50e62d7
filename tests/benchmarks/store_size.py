"""Measure: bytes per event in ClickHouse with the real schema - raw rows and aggregates, compressed.

Run it from a checkout (no broker needed)::

    PYTHONPATH=$PWD:$PWD/tests python tests/benchmarks/store_size.py --events 1000000 --days 7

It migrates an embedded store (chDB: the same engine and DDL as a server) with
every room's schema, writes ``--events`` synthetic events over ``--days`` of
five products (:mod:`pipeline.tools.synth`, every event family) through the
worker's own write path (``tests/support/scenario_store.py``: raw rows, minute
partials, breakdowns; the materialized views fill the unique-user states), merges
every table (``OPTIMIZE ... FINAL``: the steady state a server reaches in the
background) and reads ``system.parts`` and ``system.columns``: compressed and
uncompressed bytes per table and per event, and the largest raw columns.

The raw table grows with events; the aggregate tables grow with products x
versions x minutes x source partitions (and features, goals), not with
events - so their bytes per event fall as traffic per product grows. The
output says both. A measurement, not a test: nothing here asserts a size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.scenario_store import write_events

from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.tools import synth
from pipeline.tools.load import traffic_config
from pipeline.usecases import schema


def measure(events: int, days: float, partitions: int, seed: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix="pulse-store-size-"))
    settings = Settings(data_dir=root)
    client = clickhouse.connect(settings)
    db = settings.clickhouse_database
    try:
        schema.migrate(client, settings)
        end = datetime.now(UTC).replace(second=0, microsecond=0)
        cfg = traffic_config(events, timedelta(days=days), "steady", seed, end=end)
        started = time.monotonic()
        stored = write_events(client, db, synth.traffic(cfg), partitions=partitions)
        write_s = time.monotonic() - started
        tables = [t for (t,) in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree%'",
            parameters={"db": db},
        ).result_rows]  # fmt: skip
        for table in tables:
            client.command(f"OPTIMIZE TABLE {db}.`{table}` FINAL")
        rows = client.query(
            "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), sum(bytes_on_disk), "
            "count() FROM system.parts WHERE database = {db:String} AND active GROUP BY table ORDER BY table",
            parameters={"db": db},
        ).result_rows
        columns = client.query(
            "SELECT name, data_compressed_bytes, data_uncompressed_bytes FROM system.columns "
            "WHERE database = {db:String} AND table = 'events' ORDER BY data_compressed_bytes DESC LIMIT 8",
            parameters={"db": db},
        ).result_rows
        minutes = client.query(f"SELECT uniqExact(product, minute) FROM {db}.product_metrics_1m").result_rows[0][0]
    finally:
        client.close()
        clickhouse.release(settings)
        shutil.rmtree(root, ignore_errors=True)
    per_table = {
        t: {
            "rows": int(r),
            "compressed_bytes": int(c),
            "uncompressed_bytes": int(u),
            "bytes_on_disk": int(d),
            "parts": int(p),
            "compressed_bytes_per_event": round(c / stored, 2),
            "bytes_on_disk_per_event": round(d / stored, 2),
            "compressed_bytes_per_row": round(c / r, 2) if r else None,
        }
        for t, r, c, u, d, p in rows
    }
    raw = per_table.get("events", {})
    aggregates = {t: v for t, v in per_table.items() if t != "events" and t != "schema_migrations"}
    agg_disk = sum(v["bytes_on_disk"] for v in aggregates.values())
    return {
        "events": stored,
        "days": days,
        "products": len(cfg.products),
        "product_minutes": int(minutes),
        "source_partitions": partitions,
        "write_seconds": round(write_s, 1),
        "raw_bytes_on_disk_per_event": raw.get("bytes_on_disk_per_event"),
        "raw_compressed_bytes_per_event": raw.get("compressed_bytes_per_event"),
        "raw_uncompressed_bytes_per_event": round(raw.get("uncompressed_bytes", 0) / stored, 2),
        "aggregates_bytes_on_disk_per_event": round(agg_disk / stored, 2),
        "aggregates_bytes_on_disk_per_product_minute": round(agg_disk / minutes, 1) if minutes else None,
        "tables": per_table,
        "largest_raw_columns": [
            {"column": n, "compressed_bytes_per_event": round(c / stored, 2), "ratio": round(u / c, 1) if c else None}
            for n, c, u in columns
            if c  # a compact part (small tables) keeps no per-column sizes
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0, help="event-time span of the traffic")
    parser.add_argument("--partitions", type=int, default=12, help="source partitions (a key of the aggregates)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    args = parser.parse_args(argv)
    doc = measure(args.events, args.days, args.partitions, args.seed)
    if args.json:
        print(json.dumps(doc))
        return 0
    print(
        f"{doc['events']:,} events over {doc['days']:g} days, {doc['products']} products, "
        f"{doc['product_minutes']:,} product-minutes, {doc['source_partitions']} source partitions "
        f"(written in {doc['write_seconds']} s, then merged)"
    )
    print(f"{'table':34} {'rows':>11} {'parts':>5} {'compressed':>12} {'on disk':>12} {'B/event':>8} {'B/row':>7}")
    for t, v in doc["tables"].items():
        print(
            f"{t:34} {v['rows']:>11,} {v['parts']:>5} {v['compressed_bytes']:>12,} {v['bytes_on_disk']:>12,} "
            f"{v['bytes_on_disk_per_event']:>8} {v['compressed_bytes_per_row'] or 0:>7}"
        )
    print(
        f"raw events: {doc['raw_bytes_on_disk_per_event']} B/event on disk "
        f"({doc['raw_uncompressed_bytes_per_event']} B uncompressed); aggregates: "
        f"{doc['aggregates_bytes_on_disk_per_event']} B/event, "
        f"{doc['aggregates_bytes_on_disk_per_product_minute']} B per product-minute"
    )
    if doc["largest_raw_columns"]:
        print("largest raw columns (compressed B/event, compression ratio):")
    for c in doc["largest_raw_columns"]:
        print(f"  {c['column']:24} {c['compressed_bytes_per_event']:>7}  x{c['ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
