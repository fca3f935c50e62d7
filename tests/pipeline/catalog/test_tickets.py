"""Ticket metrics pair opened -> resolved per ticket, and can be filtered and grouped by version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.scenario_store import write_events

from pipeline import catalog, clickhouse
from pipeline.events import EVENT_ADAPTER
from pipeline.settings import Settings


def test_ticket_metrics_by_and_for_a_version(tmp_path):
    settings = Settings(data_dir=tmp_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)

    def ticket(tid: str, action: str, version: str, hours: float) -> object:
        return EVENT_ADAPTER.validate_python({
            "type": "support_ticket", "product": "shop", "version": version, "ts": t0 + timedelta(hours=hours),
            "user_id": "u1", "ticket_id": tid, "action": action,
        })  # fmt: skip

    events = [ticket("a", "opened", "1.0", 0), ticket("a", "resolved", "1.0", 2), ticket("b", "opened", "1.0", 1),
              ticket("c", "opened", "2.0", 1), ticket("c", "resolved", "2.0", 4)]  # fmt: skip
    with clickhouse.opened(settings) as client:
        clickhouse.migrate(client, "pulse")
        write_events(client, "pulse", events)
        since = t0 - timedelta(hours=1)
        names = ["open_tickets", "time_to_resolve_h"]
        _, rows = catalog.query(client, "pulse", names, since, by=("product", "version"))
        assert rows == [("shop", "1.0", 1, 2.0), ("shop", "2.0", 0, 3.0)]
        _, rows = catalog.query(client, "pulse", names, since, version="2.0")
        assert rows == [("shop", 0, 3.0)]
