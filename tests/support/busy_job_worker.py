"""A worker whose one leader job holds its thread until the events it waits for are stored (tests only).

``python -m tests.support.busy_job_worker --expect N`` runs the worker
(:func:`consumers.app.run_worker`, settings from the environment as ``pulse
worker`` reads them) with a single leader timer. Its first run logs
``event=busy_job_started``, then counts the stored events with the job's own
client until there are ``N`` of them or ``--patience`` seconds pass, and logs
``event=busy_job_saw rows=R seconds=S``; later runs return at once. Ingestion
that waited for the job - as it did when timers ran on the sink's thread -
would store nothing while it runs.
"""

from __future__ import annotations

import argparse
import logging
import time

from clickhouse_connect.driver.client import Client

from consumers.app import run_worker
from consumers.extensions import LeaderTimer
from pipeline.settings import load_settings

log = logging.getLogger(__name__)


def busy_job(database: str, expect: int, patience_s: float):  # noqa: ANN201 - a closure for LeaderTimer.run
    done = []

    def run(client: Client) -> None:
        if done:
            return
        done.append(True)
        log.warning("event=busy_job_started")
        started = time.monotonic()
        rows = 0
        while time.monotonic() - started < patience_s:
            rows = int(client.query(f"SELECT count() FROM {database}.events").result_rows[0][0])
            if rows >= expect:
                break
            time.sleep(0.2)
        log.warning("event=busy_job_saw rows=%d seconds=%.1f", rows, time.monotonic() - started)

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.busy_job_worker")
    parser.add_argument("--expect", type=int, required=True, help="events the job waits to see stored")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds the job waits at most")
    args = parser.parse_args(argv)
    settings = load_settings()
    job = busy_job(settings.clickhouse_database, args.expect, args.patience)
    run_worker(settings, timers=[LeaderTimer("busy", 1.0, job)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
