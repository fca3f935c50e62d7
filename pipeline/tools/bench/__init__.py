"""``pulse bench``: how fast ProductPulse carries events, against the ceiling and the usual alternatives.

Three modes:

* ``throughput`` (default): one topic of ``--events`` synthetic events (every
  event family, unique ids; ``--format single|pack``) is produced once, before
  any clock starts; then each contender reads it from a cold consumer group
  until all its results are queryable, and is measured for events/s, CPU
  seconds per million events, peak RSS and its ratio to ProductPulse. Every
  contender's stored totals are checked against the ground truth: one with
  wrong totals is reported WRONG, not as a speed. Contenders
  (:mod:`pipeline.tools.bench.contenders`): the ceiling (read; read + parse),
  ProductPulse (``pulse worker``), a textbook Faust app, a quixstreams app and
  the naive kafka-python script. ``--quick`` is a small run for CI that checks
  only that every contender stored the right totals.
* ``freshness``: steady load at ``--rate`` for ``--duration`` against
  ProductPulse; p50/p99 of event time -> queryable.
* ``soak``: steady load; the worker's RSS sampled over ``--duration``.

The CLI calls :func:`add_arguments` to build the ``pulse bench`` parser and
:func:`run` to execute it (after handling ``--scratch-database``).
"""

from __future__ import annotations

import argparse
import json

from pipeline.settings import Settings

__all__ = ["add_arguments", "naive_consumer", "run"]


def naive_consumer(settings: Settings) -> int:
    """The naive contender's consumer loop (``pulse naive``); imported on use, like everything heavy here."""
    from pipeline.tools.bench.naive import naive_consumer as loop

    return loop(settings)


QUICK_EVENTS = 20_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``pulse bench``."""
    parser.add_argument(
        "mode", nargs="?", choices=("throughput", "freshness", "soak"), default="throughput",
        help="throughput: every contender on one pre-produced topic (default); freshness: event time -> queryable "
        "under steady load; soak: worker RSS under steady load",
    )  # fmt: skip
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the topic (throughput; default 1M)")
    parser.add_argument(
        "--format", choices=("single", "pack"), default="pack",
        help="single: one JSON event per message (other producers); pack: the SDK's ndjson packs of <=100 events",
    )  # fmt: skip
    parser.add_argument(
        "--contenders", default=None,
        help="comma-separated subset of: ceiling-read, ceiling-parse, pulse, faust, quixstreams, naive (default all)",
    )  # fmt: skip
    parser.add_argument(
        "--quick", action="store_true",
        help=f"small run ({QUICK_EVENTS:,} events) that checks only that every contender stored correct totals "
        "(CI; with CI=true a contender that is not installed fails it)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON document with every number (stdout)")
    parser.add_argument("--rate", type=int, default=5_000, help="events/s of steady load (freshness, soak)")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds of steady load (default: freshness 60, soak 600)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's data folders and logs (debugging)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``pulse bench`` with parsed arguments; returns the exit code (0: every contender correct)."""
    from rich.console import Console  # the worker extra: `pulse --help` must not need it

    console = Console(stderr=True)
    if args.mode == "throughput":
        from pipeline.tools.bench.throughput import Plan, choose, in_ci, run_throughput

        events = QUICK_EVENTS if args.quick else args.events
        plan = Plan(
            events=events,
            fmt=args.format,
            contenders=choose(args.contenders),
            quick=args.quick,
            require_all=args.quick and in_ci(),
            keep=args.keep,
        )
        code, doc = run_throughput(settings, plan, console)
        if doc:
            _show(doc, args.json, f"pulse bench: {events:,} events, format {args.format}")
        return code
    from pipeline.tools.bench.steady import run_freshness, run_soak

    if args.mode == "freshness":
        code, doc = run_freshness(settings, args.format, args.rate, args.duration or 60.0, console)
    else:
        code, doc = run_soak(settings, args.format, args.rate, args.duration or 600.0, console)
    if args.json and doc:
        print(json.dumps(doc))
    return code


def _show(doc: dict, json_out: bool, title: str) -> None:
    from pipeline.tools.bench.contenders import Result
    from pipeline.tools.bench.report import print_table

    results = [Result(**r) for r in doc["contenders"]]
    print_table(results, title, to_stderr=json_out)
    if json_out:
        print(json.dumps(doc))
