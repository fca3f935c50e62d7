"""A worker that leads again after another worker's term judges alerts by the store, not by its old memory.

Two :class:`pipeline.usecases.worker.Evaluation` objects stand for two workers
of one group on one store (embedded here; the same code runs on a server).
Worker B leads first, while there is no traffic; worker A leads next and fires
the traffic alert of every product; B leads again. Without a fresh evaluator
for B's second term, B still believes every alert inactive and fires them all
a second time - a doubled page. The fault test
``tests/faults/test_many_workers.py`` runs the same across real leader changes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from support.scenario_store import write_events

from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.tools import synth
from pipeline.usecases import schema
from pipeline.usecases.worker import Evaluation

RULES = """
groups:
  - name: traffic
    rules:
      - alert: TrafficSeen
        metric: events
        window: 1h
        op: ">"
        threshold: 0
        by: [product]
        labels: {severity: ticket, audience: pm}
        annotations:
          summary: "{{ product }} has traffic"
"""


def firing(client, db: str) -> dict[str, int]:
    rows = client.query(
        f"SELECT labels['product'], count() FROM {db}.alert_events WHERE transition = 'firing' GROUP BY 1"
    ).result_rows
    return dict(rows)


def test_a_worker_leading_again_reads_the_other_leaders_alerts_and_fires_nothing_twice(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "traffic.yaml").write_text(RULES)
    settings = Settings(data_dir=tmp_path / "data", alert_rules_dir=tmp_path / "rules", alert_eval_interval_s=0.5)
    client = clickhouse.connect(settings)
    db = settings.clickhouse_database
    a, b = Evaluation(settings), Evaluation(settings)
    try:
        schema.migrate(client, settings)
        b.elected()
        b.evaluate(client)  # B's first term: no traffic, no alert
        assert firing(client, db) == {}

        end = datetime.now(UTC)
        cfg = synth.TrafficConfig(
            seed=3, start=end - timedelta(minutes=30), span=timedelta(minutes=30), users_per_product=20
        )
        write_events(client, db, synth.traffic(cfg))
        a.elected()
        a.evaluate(client)  # A's term: every product with traffic in the window fires once
        fired = firing(client, db)
        assert fired and set(fired) <= set(cfg.products) and set(fired.values()) == {1}

        b.elected()  # B leads again
        for _ in range(2):
            time.sleep(0.6)  # B's group is due again
            b.evaluate(client)
        assert firing(client, db) == fired
    finally:
        a.close()
        b.close()
        client.close()
        clickhouse.release(settings)
