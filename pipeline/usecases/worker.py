"""``pulse worker``: the Faust worker composed with what the other rooms hand it.

``consumers`` knows nothing of ``alerts`` or ``dashboards``: this module builds
the health job (:mod:`alerts.health`) and the alert evaluator and hands them
to the worker as leader-only timers, and
mounts the read API and the built-in dashboards as the worker's pages.
"""

from __future__ import annotations

from alerts.evaluator import build_evaluator
from alerts.health import HealthJob
from consumers.app import run_worker
from consumers.extensions import LeaderTimer
from pipeline.settings import Settings
from pipeline.usecases import schema
from pipeline.usecases.api import worker_pages


def run(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker until SIGTERM; refuses to start (raises RuleFileError) on any bad rule file."""
    evaluator = build_evaluator(settings)  # before anything starts: a bad rule file starts nothing
    health = HealthJob(settings.clickhouse_database)
    timers = [
        LeaderTimer("health", settings.health_interval_s, health.run),  # verdicts and scorecards, whatever the rules
        LeaderTimer("alerts", settings.alert_eval_interval_s, evaluator.evaluate),
    ]
    try:
        pages = worker_pages(settings)
        run_worker(settings, timers=timers, pages=pages, loglevel=loglevel, migrations=schema.MIGRATIONS)
    finally:
        evaluator.close()
