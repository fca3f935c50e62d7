"""Check what a contender stored against the workload's ground truth.

A fast wrong answer must not win: every contender that stores rows is checked
after it stopped, in its own ClickHouse folder (or database), by queries that
do not trust its own counters - raw rows stored once each (``count() FINAL`` and
``uniqExact(event_id)`` equal the events, and so does the count per type), and
for the aggregating contenders the per-minute counts: every event-time minute
holds exactly the events of that minute, so they also sum to the total.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.tools.bench.workload import Truth

Aggregates = Literal["pulse", "windows"] | None


def check_stored(settings: Settings, truth: Truth, aggregates: Aggregates) -> list[str]:
    """What is wrong with the contender's stored totals (empty: all correct)."""
    db = settings.clickhouse_database
    problems: list[str] = []
    with clickhouse.opened(settings) as client:
        rows, ids = client.query(f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL").result_rows[0]
        if rows != truth.events or ids != truth.events:
            problems.append(f"raw rows {rows:,} ({ids:,} distinct ids), want {truth.events:,}")
        by_type = Counter(
            {t: n for t, n in client.query(f"SELECT type, count() FROM {db}.events FINAL GROUP BY type").result_rows}
        )
        if by_type != truth.by_type:
            problems.append(f"events per type differ: {_diff(by_type, truth.by_type)}")
        if aggregates is not None:
            table, column = (
                ("product_metrics_1m", "events") if aggregates == "pulse" else ("bench_window_counts", "count")
            )
            minutes = Counter(
                {
                    int(m): int(n)
                    for m, n in client.query(
                        f"SELECT toUnixTimestamp(minute) AS m, sum({column}) FROM {db}.{table} FINAL GROUP BY m"
                    ).result_rows
                }
            )
            total = sum(minutes.values())
            if total != truth.events:
                problems.append(f"per-minute counts sum to {total:,}, want {truth.events:,}")
            elif minutes != truth.by_minute:
                problems.append(f"per-minute counts differ: {_diff(minutes, truth.by_minute)}")
    return problems


def check_read(by_type: dict[str, int], events: int, truth: Truth, parsed: bool) -> list[str]:
    """What is wrong with a ceiling's tally (it stores nothing: it must have seen every event once)."""
    problems = []
    if events != truth.events:
        problems.append(f"read {events:,} events, want {truth.events:,}")
    if parsed and Counter(by_type) != truth.by_type:
        problems.append(f"events per type differ: {_diff(Counter(by_type), truth.by_type)}")
    return problems


def _diff(got: Counter[str] | Counter[int], want: Counter[str] | Counter[int], limit: int = 3) -> str:
    keys = sorted({*got, *want}, key=str)
    wrong = [f"{k}: {got.get(k, 0)} vs {want.get(k, 0)}" for k in keys if got.get(k, 0) != want.get(k, 0)]  # type: ignore[call-overload]
    more = f" (+{len(wrong) - limit} more)" if len(wrong) > limit else ""
    return ", ".join(wrong[:limit]) + more
