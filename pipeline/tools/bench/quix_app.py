"""The quixstreams contender: the same validation, raw rows and per-minute counts with quixstreams.

Runs as a child process (``python -m pipeline.tools.bench.quix_app``, settings
from ``PULSE_*``, its own embedded ClickHouse folder). A quixstreams
``Application`` splits packs into their events (``apply(..., expand=True)``),
validates each with pydantic (``EVENT_ADAPTER.validate_json``), sets the
record's timestamp to the event time, and branches into two ``BatchingSink``
subclasses that write with clickhouse-connect to chDB: raw rows into
``events``, and a tumbling one-minute window count per message key
(``.tumbling_window(60_000).count().current()``, state in RocksDB with its
changelog topic, as quixstreams does by default) into ``bench_window_counts``,
newest count per window. ``.current()`` rather than ``.final()``: a window
closes only when a later event of its key arrives, so the last windows of a
finite topic would never be written.

quixstreams commits a checkpoint only after its sinks flushed (every
second here), so zero consumer lag means every row is queryable.
"""

from __future__ import annotations

import sys
from typing import Any

from pipeline import clickhouse
from pipeline.events import EVENT_ADAPTER, PACK_FORMAT, PACK_HEADER
from pipeline.kafka.config import confluent_config
from pipeline.settings import Settings
from pipeline.tools.bench.rows import EVENT_COLUMNS, WINDOW_COLUMNS, create_window_table, event_row

PROGRESS_PREFIX = "bench-progress "
WINDOW_MS = 60_000
GRACE_MS = 300_000  # ProductPulse's default allowed lateness


def build(settings: Settings) -> Any:
    from quixstreams import Application
    from quixstreams.models import TopicConfig
    from quixstreams.sinks import BatchingSink, SinkBatch

    client = clickhouse.connect(settings)
    db = settings.clickhouse_database
    clickhouse.migrate(client, db, settings.events_ttl_days)
    create_window_table(client, db)
    totals = {"raw": 0, "windows": 0}
    newest: dict[tuple[str, int], int] = {}

    def report() -> None:
        print(f"{PROGRESS_PREFIX}raw={totals['raw']} windows={totals['windows']}", flush=True)

    class RawRowsSink(BatchingSink):
        def write(self, batch: SinkBatch) -> None:
            p = batch.partition
            rows = [event_row(item.value[1], p, item.offset, item.value[0]) for item in batch]
            client.insert(f"{db}.events", rows, column_names=EVENT_COLUMNS)
            totals["raw"] += len(rows)
            report()

    class WindowCountsSink(BatchingSink):
        def write(self, batch: SinkBatch) -> None:
            latest: dict[tuple[str, int], int] = {}
            for item in batch:
                latest[(item.key, item.value["start"])] = item.value["value"]
            for window, count in latest.items():
                totals["windows"] += count - newest.get(window, 0)
                newest[window] = count
            rows = [[key, start // 1000, count] for (key, start), count in latest.items()]
            client.insert(f"{db}.bench_window_counts", rows, column_names=WINDOW_COLUMNS)
            report()

    app = Application(
        consumer_group=settings.consumer_group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=str(settings.data_dir / "quix-state"),
        loglevel="WARNING",
        **_broker(settings),
    )
    topic = app.topic(
        settings.events_topic,
        key_deserializer="str",
        value_deserializer="bytes",
        config=TopicConfig(
            num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication or 1
        ),
    )

    def split(value: bytes, key: Any, timestamp: int, headers: Any) -> list[tuple[int, bytes]]:
        pack = bool(headers) and any(k == PACK_HEADER and v == PACK_FORMAT for k, v in headers)
        return list(enumerate(value.split(b"\n"))) if pack else [(0, value)]

    sdf = app.dataframe(topic)
    sdf = sdf.apply(split, expand=True, metadata=True)
    sdf = sdf.apply(lambda item: (item[0], EVENT_ADAPTER.validate_json(item[1])))
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(value[1].ts.timestamp() * 1000))
    sdf.sink(RawRowsSink())
    windows = sdf.tumbling_window(WINDOW_MS, grace_ms=GRACE_MS).count().current()
    windows.sink(WindowCountsSink())
    return app


def _broker(settings: Settings) -> dict[str, Any]:
    from quixstreams.kafka.configuration import ConnectionConfig

    cfg = confluent_config(settings)
    return {"broker_address": ConnectionConfig(bootstrap_servers=cfg.pop("bootstrap.servers"), **_conn(cfg))}


def _conn(cfg: dict[str, str]) -> dict[str, Any]:
    names = {
        "security.protocol": "security_protocol", "sasl.mechanism": "sasl_mechanism",
        "sasl.username": "sasl_username", "sasl.password": "sasl_password", "ssl.ca.location": "ssl_ca_location",
        "ssl.certificate.location": "ssl_certificate_location", "ssl.key.location": "ssl_key_location",
    }  # fmt: skip
    return {names[k]: v for k, v in cfg.items() if k in names}


def main() -> int:
    app = build(Settings())
    print("bench-ready", flush=True)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
