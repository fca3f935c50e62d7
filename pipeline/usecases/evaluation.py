"""``pulse alerts run``: the evaluator a worker runs as a leader-only timer, for a store no worker holds.

:func:`run_evaluations` opens the store, applies the migrations, and
runs the health job (:mod:`alerts.health`) and evaluates the rules once (``once``, or at a given time) or every
``PULSE_ALERT_EVAL_INTERVAL_S`` until interrupted; each report goes to the
caller's ``show`` as it is made, so the CLI prints it at once. The notifiers'
queues are flushed (bounded) on the way out, whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from alerts.evaluator import EvaluationReport, build_evaluator
from alerts.health import HealthJob
from pipeline import clickhouse
from pipeline.settings import Settings
from pipeline.usecases import schema
from pipeline.usecases.reads import parse_time


def run_evaluations(
    settings: Settings, show: Callable[[EvaluationReport], None], *, at: str | None = None, once: bool = False
) -> int:
    """Evaluate at ``at`` (ISO time with a timezone; implies ``once``) or now, once or on the interval.

    Returns the exit status of the last evaluation: 1 if any rule failed, else 0 (only a single evaluation
    returns; the loop runs until KeyboardInterrupt). Refuses to start on any bad rule file.
    """
    when = parse_time(at) if at else None
    evaluator = build_evaluator(settings)
    try:
        with clickhouse.opened(settings) as client:
            schema.migrate(client, settings)
            while True:
                HealthJob(settings.clickhouse_database).run(client, when)
                report = evaluator.evaluate(client, when)
                show(report)
                if once or when is not None:
                    return 1 if report.errors else 0
                time.sleep(settings.alert_eval_interval_s)
    finally:
        evaluator.close()
