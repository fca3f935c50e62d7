"""The naive baseline: what a typical script does (runs as ``pulse naive``).

A kafka-python consumer that validates each event with pydantic and inserts
its rows row-wise in small batches of about 100 (a pack's events go in one
insert, single events are gathered up to 100), committing once the rows of a
``poll()`` are all inserted. Raw rows only - no aggregates - so it does
strictly less work than ProductPulse. It commits only after its insert, so
zero consumer lag means every row is queryable.
"""

from __future__ import annotations

from typing import Any

from pipeline import clickhouse
from pipeline.events import EVENT_ADAPTER, is_pack, split_pack
from pipeline.kafka.config import kafka_python_config
from pipeline.settings import Settings
from pipeline.tools.bench.rows import EVENT_COLUMNS, event_row

READY_LINE = "naive consumer ready"
SMALL_BATCH = 100


def naive_consumer(settings: Settings) -> int:
    """Consume, validate each event, insert each poll's rows, commit; until SIGTERM."""
    from kafka import KafkaConsumer

    client = clickhouse.connect(settings)
    clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days)
    consumer = KafkaConsumer(
        settings.events_topic,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        **kafka_python_config(settings),
    )
    print(READY_LINE, flush=True)
    table = f"{settings.clickhouse_database}.events"
    while True:
        polled = consumer.poll(timeout_ms=1000)
        rows: list[list[Any]] = []
        for messages in polled.values():
            for msg in messages:
                values = split_pack(msg.value) if is_pack(msg.headers) else [msg.value]
                for index, value in enumerate(values):
                    event = EVENT_ADAPTER.validate_json(value)
                    rows.append(event_row(event, msg.partition, msg.offset, index))
                if len(rows) >= SMALL_BATCH:
                    client.insert(table, rows, column_names=EVENT_COLUMNS)
                    rows = []
        if rows:
            client.insert(table, rows, column_names=EVENT_COLUMNS)
        if polled:
            consumer.commit()


if __name__ == "__main__":
    import sys

    sys.exit(naive_consumer(Settings()))
