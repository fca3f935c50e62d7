"""Unique-user metrics at scale: the sketch error at 1M users stays within the stated 2%."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline import catalog, clickhouse
from pipeline.settings import Settings

USERS = 1_000_000
DAYS = 30


def test_active_users_and_dau_at_one_million_users(tmp_path):
    settings = Settings(data_dir=tmp_path)
    today = datetime.now(UTC).date()
    with clickhouse.opened(settings) as client:
        clickhouse.migrate(client, "pulse")
        # Fill users_1d the way its materialized view does: each user active on 3 of the 30 days.
        client.command(
            "INSERT INTO pulse.users_1d SELECT 'big', '1.0', toDate({today:Date}) - (number % 30) AS day, "
            "uniqCombined64State(concat('u-', toString(intDiv(number, 3)))), "
            "uniqCombined64State(concat('u-', toString(intDiv(number, 3)))), "
            "uniqCombined64StateIf(concat('u-', toString(intDiv(number, 3))), number % 100 = 0) "
            f"FROM numbers({USERS * 3}) GROUP BY day",
            parameters={"today": today},
        )
        since = datetime.combine(today - timedelta(days=DAYS - 1), datetime.min.time(), tzinfo=UTC)
        _, rows = catalog.query(client, "pulse", ["active_users", "dau", "stickiness"], since)
    ((product, active, dau, stickiness),) = rows
    assert product == "big"
    assert abs(active - USERS) / USERS < 0.02
    assert abs(dau - USERS * 3 / DAYS) / (USERS * 3 / DAYS) < 0.02
    assert abs(stickiness - 3 / DAYS) / (3 / DAYS) < 0.03


def test_a_window_counts_every_utc_day_it_touches(tmp_path):
    settings = Settings(data_dir=tmp_path)
    today = datetime.now(UTC).date()
    with clickhouse.opened(settings) as client:
        clickhouse.migrate(client, "pulse")
        # 300 users yesterday, 100 today (50 of them seen yesterday too).
        client.command(
            "INSERT INTO pulse.users_1d SELECT 'p', '1', day, uniqCombined64State(u), uniqCombined64State(u), "
            "uniqCombined64StateIf(u, 0) FROM (SELECT toDate({today:Date}) - 1 AS day, toString(number) AS u "
            "FROM numbers(300) UNION ALL SELECT toDate({today:Date}), toString(number + 250) FROM numbers(100)) "
            "GROUP BY day",
            parameters={"today": today},
        )
        noon_yesterday = datetime.combine(today - timedelta(days=1), datetime.min.time(), tzinfo=UTC) + timedelta(
            hours=12
        )
        _, rows = catalog.query(client, "pulse", ["active_users", "dau"], noon_yesterday)
    assert rows == [("p", 350, 200.0)]
