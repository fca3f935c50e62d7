"""``pulse worker``: the Faust worker composed with what the other rooms hand it.

``consumers`` knows nothing of ``alerts`` or ``dashboards``: this module builds
the health job (:mod:`alerts.health`) and the alert evaluator and hands them
to the worker as leader-only timers, and
mounts the read API and the built-in dashboards as the worker's pages.
"""

from __future__ import annotations

import threading

from clickhouse_connect.driver.client import Client

from alerts.evaluator import Evaluator, build_evaluator
from alerts.health import HealthJob
from consumers.app import run_worker
from consumers.extensions import LeaderTimer
from pipeline.settings import Settings
from pipeline.usecases import schema
from pipeline.usecases.api import worker_pages


class Evaluation:
    """The alert evaluator as a leader-only job, one evaluator per term of leadership.

    An evaluator keeps the alerts' state in memory and reads it from the store only once. A worker that led,
    lost the lead to another worker and leads again would otherwise judge with what it knew before: an alert
    the other leader fired would look new and fire (and notify) a second time, one it resolved would stay
    firing. So each term starts with a fresh evaluator, which reads the newest stored state before it
    evaluates (:meth:`alerts.evaluator.Evaluator.restore`).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.evaluator: Evaluator = build_evaluator(settings)  # a bad rule file fails here, before anything starts
        self._terms = 0

    def elected(self) -> None:
        """A term of leadership starts (the worker's event loop); the first term keeps the evaluator built."""
        self._terms += 1
        if self._terms > 1:
            old, self.evaluator = self.evaluator, build_evaluator(self.settings)
            # Its notifiers flush what they still hold (up to seconds): not on the worker's event loop.
            threading.Thread(target=old.close, name="evaluator-close", daemon=True).start()

    def evaluate(self, client: Client) -> object:
        return self.evaluator.evaluate(client)

    def close(self) -> None:
        self.evaluator.close()


def run(settings: Settings, loglevel: str = "info") -> None:
    """Run a worker until SIGTERM; refuses to start (raises RuleFileError) on any bad rule file."""
    evaluation = Evaluation(settings)  # before anything starts: a bad rule file starts nothing
    health = HealthJob(settings.clickhouse_database)
    timers = [
        LeaderTimer("health", settings.health_interval_s, health.run),  # verdicts and scorecards, whatever the rules
        LeaderTimer("alerts", settings.alert_eval_interval_s, evaluation.evaluate, on_elected=evaluation.elected),
    ]
    try:
        pages = worker_pages(settings)
        run_worker(settings, timers=timers, pages=pages, loglevel=loglevel, migrations=schema.MIGRATIONS)
    finally:
        evaluation.close()
