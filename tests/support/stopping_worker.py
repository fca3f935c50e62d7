"""A worker that stops itself just before step k of its first batch's durable step (fault tests only).

``python -m tests.support.stopping_worker --step K [--signal KILL|TERM]`` runs
the worker (:func:`consumers.app.run_worker`, settings from the environment as
``pulse worker`` reads them) with an ``on_step`` hook that sends this process
SIGKILL or SIGTERM just before step K of :meth:`consumers.ingest.Ingestor.process`,
once, and logs ``event=test_stop step=K signal=S`` first.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable

from consumers.app import run_worker
from pipeline.settings import load_settings

log = logging.getLogger(__name__)
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}


def stop_before(step: int, signal_name: str) -> Callable[[int], None]:
    """An ``on_step`` hook that signals this process just before ``step``, the first time it comes."""
    pending = [step]

    def on_step(k: int) -> None:
        if pending and k == pending[0]:
            pending.clear()
            log.warning("event=test_stop step=%d signal=%s", k, signal_name)
            os.kill(os.getpid(), SIGNALS[signal_name])

    return on_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.stopping_worker")
    parser.add_argument("--step", type=int, required=True, choices=range(1, 8), help="stop just before this step")
    parser.add_argument("--signal", choices=sorted(SIGNALS), default="KILL", help="how to stop")
    args = parser.parse_args(argv)
    run_worker(load_settings(), on_step=stop_before(args.step, args.signal))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
