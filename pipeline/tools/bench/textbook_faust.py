"""The textbook Faust contender: a small Faust app written the way Faust's documentation shows.

Runs as a child process (``python -m pipeline.tools.bench.textbook_faust``,
settings from ``PULSE_*``, its own embedded ClickHouse folder). An agent loops
``async for value in stream`` - one event at a time (a pack is split into its
lines inside the loop) - validates each event with pydantic
(``EVENT_ADAPTER.validate_json``), buffers its raw row, and counts it in a
tumbling windowed table (``app.Table(...).tumbling(60)``, event time, keyed by
``product:user``, backed by its changelog topic as every Faust table is).
Buffered raw rows are inserted every 10,000 events and on a one-second timer,
together with the current count of every window touched since the last insert.

Why window counts are written as they change and not from ``on_window_close``:
faust-streaming expires windows by the wall clock (``window.stale(start,
time.time())``), so windows of past event time close at the next cleanup, and
``on_window_close`` skips every window that starts before the last one it
closed while still deleting its count - a textbook app written that way loses
events, and this harness would report it WRONG. Upserting the current counts is
the nearest correct textbook shape (the same as quixstreams' ``.current()``).

Faust commits offsets on its own timer, not after the insert, so the harness
cannot use consumer lag here: after every insert the app prints
``bench-progress raw=N windows=M`` (rows inserted, and the sum of the newest
window counts), and the harness waits until both equal the topic's events.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust

from pipeline import clickhouse
from pipeline.events import EVENT_ADAPTER, PACK_FORMAT, PACK_HEADER, partition_key
from pipeline.kafka.config import faust_broker_config
from pipeline.settings import Settings
from pipeline.tools.bench.rows import EVENT_COLUMNS, WINDOW_COLUMNS, create_window_table, event_row

PROGRESS_PREFIX = "bench-progress "
FLUSH_EVERY = 10_000
WINDOW_S = 60


def build(settings: Settings) -> faust.App:
    client = clickhouse.connect(settings)
    db = settings.clickhouse_database
    clickhouse.migrate(client, db, settings.events_ttl_days)
    create_window_table(client, db)

    app = faust.App(
        settings.consumer_group,
        datadir=str(settings.data_dir / "faust"),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        **faust_broker_config(settings),
    )
    topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes)
    event_time = [0.0]  # the current event's time: the windowed table is relative to it
    counts = (
        app.Table("minute_counts", default=int, partitions=settings.topic_partitions)
        .tumbling(WINDOW_S)
        .relative_to(lambda _event: event_time[0])  # type: ignore[attr-defined]
    )
    rows: list[list[Any]] = []
    touched: set[tuple[str, float]] = set()
    newest: dict[tuple[str, float], int] = {}
    totals = {"raw": 0, "windows": 0}

    def flush() -> None:
        if rows:
            client.insert(f"{db}.events", rows, column_names=EVENT_COLUMNS)
            totals["raw"] += len(rows)
            rows.clear()
        if touched:
            updates = []
            for key, start in touched:
                event_time[0] = start  # the table is relative to it: value() reads the window holding `start`
                count = int(counts[key].value())
                totals["windows"] += count - newest.get((key, start), 0)
                newest[(key, start)] = count
                updates.append([key, int(start), count])
            client.insert(f"{db}.bench_window_counts", updates, column_names=WINDOW_COLUMNS)
            touched.clear()
        print(f"{PROGRESS_PREFIX}raw={totals['raw']} windows={totals['windows']}", flush=True)

    @app.agent(topic)
    async def ingest(stream: Any) -> None:
        async for value in stream:
            message = stream.current_event.message
            headers = message.headers or []
            pack = any(k == PACK_HEADER and v == PACK_FORMAT for k, v in headers)
            for index, line in enumerate(value.split(b"\n") if pack else (value,)):
                event = EVENT_ADAPTER.validate_json(line)
                rows.append(event_row(event, message.partition, message.offset, index))
                t = event.ts.timestamp()
                event_time[0] = t
                key = partition_key(event).decode()
                counts[key] += 1
                touched.add((key, t // WINDOW_S * WINDOW_S))
            if len(rows) >= FLUSH_EVERY:
                flush()

    @app.timer(1.0)
    async def tick() -> None:
        if rows or touched:
            flush()

    return app


def main() -> int:
    settings = Settings()
    app = build(settings)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
