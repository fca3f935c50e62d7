"""The ``pulse`` command: argument parsing and output formatting, one call per command.

Each command parses its arguments, builds :class:`~pipeline.settings.Settings`,
calls one function - a use case in :mod:`pipeline.usecases`, or a room's own
function where it needs no store (rule checks and tests, the catalog's list,
dashboards as code, the tools) - and prints what it returns (:mod:`.table`).
Nothing here opens the store or runs SQL (``tests/test_layout.py`` checks it).
Worker-side modules are imported inside their commands, so an emit-only install
still parses ``pulse --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipeline.errors import PulseError, UsageError
from pipeline.settings import Settings, describe_invalid, load_settings

if TYPE_CHECKING:
    from alerts.evaluator import EvaluationReport

DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from the environment, with the common flags (and ``extra``) on top."""
    return load_settings(
        kafka_bootstrap=getattr(args, "bootstrap", None),
        data_dir=getattr(args, "data_dir", None),
        topic_prefix=getattr(args, "topic_prefix", None),
        **extra,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from pipeline.usecases import worker

    worker.run(_settings(args), loglevel=args.loglevel)
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from pipeline.cli.table import print_json, render
    from pipeline.masking import effective_settings

    flags = {"kafka_bootstrap": args.bootstrap, "data_dir": args.data_dir, "topic_prefix": args.topic_prefix}
    rows = effective_settings(_settings(args), os.environ, flags)
    if args.format == "json":
        print_json([{"setting": n, "value": v, "source": s} for n, v, s in rows])
    else:
        render(["setting", "value", "source"], [(n, "(unset)" if v is None else str(v), s) for n, v, s in rows])
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from pipeline.usecases.schema import migrate_store

    applied = migrate_store(_settings(args))
    print(f"applied migrations: {applied or 'none (schema up to date)'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.cli.table import print_json_tables, render
    from pipeline.tools.demo import run_demo
    from pipeline.tools.scratch import scratch_settings
    from pipeline.usecases.findings import demo_findings

    settings = scratch_settings(_settings(args), args.scratch_database, "pulse demo")
    tables = run_demo(settings, duration_s=args.duration, rate=args.rate, scenario=args.scenario, seed=args.seed,
                      findings=demo_findings, serve=args.serve)  # fmt: skip
    if args.json:
        print_json_tables((t.name, t.columns, t.rows) for t in tables)
    else:
        for t in tables:
            render(t.columns, t.rows, title=t.title)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.tools.bench import run
    from pipeline.tools.scratch import scratch_settings

    return run(scratch_settings(_settings(args), args.scratch_database, "pulse bench"), args)


def cmd_release(args: argparse.Namespace) -> int:
    from pipeline.kafka.admin import ensure_topics
    from pipeline.kafka.emitter import Emitter

    settings = _settings(args)
    ensure_topics(settings)
    release = {
        "product": args.product,
        "version": args.version,
        "released_at": args.released_at or datetime.now(UTC),
        "channel": args.channel,
        "rollout_pct": args.rollout_pct,
        "commit": args.commit,
    }
    with Emitter(settings) as em:
        em.release(release).result(timeout=settings.collector_ack_timeout_s + 20)  # acked, or an error: not "announced"
    print(f"announced {args.product} {args.version} on {settings.releases_topic}")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from pipeline.tools.load import run_load

    return run_load(
        _settings(args),
        duration_s=args.duration,
        rate=args.rate,
        span_days=args.span_days,
        scenario=args.scenario,
        seed=args.seed,
    )


def cmd_naive(args: argparse.Namespace) -> int:
    from pipeline.tools.bench import naive_consumer

    return naive_consumer(_settings(args))


def cmd_collector(args: argparse.Namespace) -> int:
    from pipeline.collector.app import run_collector

    run_collector(_settings(args, collector_host=args.host, collector_port=args.port))
    return 0


def cmd_alerts_check(args: argparse.Namespace) -> int:
    from alerts.rules import check_files, rules_paths

    paths = args.files or rules_paths(_settings(args))
    problems = check_files(paths)
    for line in problems:
        print(line, file=sys.stderr)
    if not problems:
        print(f"OK: {', '.join(map(str, paths))}")
    if args.against_store and not problems:
        from pipeline.usecases import nodata

        for w in nodata.read(_settings(args), "alerts/volumes", {"since": args.since}):
            series = ",".join(f"{k}={v}" for k, v in w["series"].items())
            print(f"warning: {w['alert']} can never fire for {series}: at most {w['most_seen']:g} "
                  f"{w['volume_metric']} in any {_span(w['window_s'])} of the last {args.since}, its min_volume is "
                  f"{w['min']:g} (lower it, or add min_volume.widen_to)", file=sys.stderr)  # fmt: skip
    return 1 if problems else 0


def _span(seconds: float) -> str:
    for unit, n in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def cmd_alerts_test(args: argparse.Namespace) -> int:
    from alerts.rules import shipped_rules_dir
    from alerts.ruletest import run_rule_tests

    report = run_rule_tests(args.files or [shipped_rules_dir() / "tests"])
    print(json.dumps(report.to_json(), indent=2) if args.format == "json" else report.text())
    return 0 if report.ok else 1


def cmd_alerts_run(args: argparse.Namespace) -> int:
    from pipeline.usecases.evaluation import run_evaluations

    return run_evaluations(_settings(args), _report_printer(args.format), at=args.at, once=args.once)


def _report_printer(fmt: str) -> Callable[[EvaluationReport], None]:
    """How ``pulse alerts run`` shows each evaluation as it happens: a JSON line, or a line plus its transitions."""

    from pipeline.cli.escape import visible
    from pipeline.cli.table import iso

    def show(report: EvaluationReport) -> None:
        if fmt == "json":
            print(json.dumps(report.to_json()), flush=True)
            return
        print(
            f"{iso(report.at)} groups={','.join(report.groups) or '-'} firing={report.firing} "
            f"pending={report.pending} nodata={report.nodata} notifications={report.notifications}",
            flush=True,
        )
        for t in report.transitions:  # labels carry event strings: no control characters reach the terminal
            print(visible(f"  {t.to_json()}"), flush=True)

    return show


def cmd_alerts_status(args: argparse.Namespace) -> int:
    from pipeline.usecases import nodata

    alerts = nodata.read(_settings(args), "alerts/status", {})
    _print_records(alerts, args.format, ["alertname", "state", "since", "value", "labels"],
                   empty="no alerts pending or firing")  # fmt: skip
    return 0


def cmd_alerts_backtest(args: argparse.Namespace) -> int:
    from pipeline.usecases import nodata

    params = {"since": args.since, "step": args.step} | ({"until": args.until} if args.until else {})
    transitions = nodata.read(_settings(args), "alerts/backtest", params)
    window = f"from {args.since}" if "T" in args.since else f"over the last {args.since}"
    _print_records(transitions, args.format, ["at", "alertname", "state", "value", "labels"],
                   empty=f"no alert would have changed state {window} (step {args.step})")  # fmt: skip
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    from pipeline.usecases import nodata

    cards = nodata.read(_settings(args), "scorecard", {"at": args.at} if args.at else {})
    from pipeline.cli.table import print_json, render, say_empty

    if not cards:
        say_empty("no products to score: no product has traffic in the scoring window")
    if args.format == "json":
        print_json(cards)
        return 0
    if not cards:
        return 0

    dims = sorted({d for card in cards for d in card["dimensions"]})
    rows = []
    for card in cards:
        scores = [_score(card["dimensions"].get(d)) for d in dims]
        why = " ".join(card.get("sentences", [])) if card["redesign_candidate"] else ""  # the evidence, in words
        rows.append((card["product"], *scores, "REDESIGN CANDIDATE" if card["redesign_candidate"] else "", why))
    render(["product", *dims, "flag", "why"], rows, title="Product scorecards (score / floor; * = below floor)")
    return 0


def _score(dim: dict[str, Any] | None) -> str:
    if not dim or dim.get("score") is None:
        return "-"
    return f"{dim['score']:.0f}/{dim['floor']:.0f}{'*' if dim['below_floor'] else ''}"


def cmd_releases(args: argparse.Namespace) -> int:
    from pipeline.usecases import nodata

    verdicts = nodata.read(_settings(args), "releases", {"at": args.at} if args.at else {})
    if args.format != "json":  # the bounds as a range; moves_until: when a later look no longer changes it
        verdicts = [{**v, "ratio_bounds": _bounds(v.get("ratio_bounds")),
                     "moves_until": "final" if v.get("final") else v.get("moves_until")} for v in verdicts]  # fmt: skip
    _print_records(verdicts, args.format, ["product", "version", "arrival", "baseline_version", "comparison",
                                           "signal", "candidate_value", "baseline_value", "ratio_bounds", "verdict",
                                           "severe", "moves_until"],
                   empty="no releases to judge: no version started serving in the judged window")  # fmt: skip
    return 0


def _bounds(bounds: list[float | None] | None) -> str | None:
    from alerts.evidence import ratio_range

    return ratio_range(*(math.inf if b is None else b for b in bounds)) if bounds else None


def cmd_eval(args: argparse.Namespace) -> int:
    from pipeline.usecases.decisions import evaluate

    seeds = list(range(args.seed, args.seed + args.seeds))
    result = evaluate(Path(args.scenarios), seeds, least=args.least)
    from pipeline.cli.table import print_json, render

    if args.format == "json":
        print_json([result])
        return 0

    s = result["summary"]
    print(f"{s['releases']} releases over seeds {seeds[0]}..{seeds[-1]}: {s['severe_paged']}/{s['severe']} severe "
          f"regressions paged (median {s['median_delay_h']:.1f} h after release); A/A releases paged "
          f"{s['aa_paged']}/{s['aa_releases']} (ticketed {s['aa_ticketed']}); healthy products paged "
          f"{s['healthy_products_paged']}/{s['healthy_products']}; false pages per product-month "
          f"{s['false_pages_per_product_month']:.3f}; releases never judged "
          f"{s['severe_unjudged'] + s['aa_unjudged']}")  # fmt: skip
    columns = ["scenario", "product", "effect", "users_per_day", "staged", "paged", "median_h", "max_h", "least_h",
               "ticketed", "ticket_median_h"]  # fmt: skip
    render(columns, [tuple(_cell(r.get(c)) for c in columns) for r in result["delays"]])
    for span, r in result["redesign"].items():
        f = r["summary"]
        wrong = f"; wrong: {', '.join(f['wrong'])}" if f["wrong"] else ""
        print(f"redesign flag on {f['products']} simulated products with {span} days of data, evaluated daily over "
              f"the last 14: precision {_ratio(f['precision'])}, recall {_ratio(f['recall'])} ("
              f"{f['candidates'] - f['missed']}/{f['candidates']} candidate evaluations flagged, "
              f"{f['false_flags']} false); "
              f"flag flips per product-month {f['flips_per_product_month']:.3f}{wrong}; the slow decay on its "
              f"typical draw (every count at its mean): {_typical(r['typical'])}")  # fmt: skip
    return 0


def _typical(t: dict[str, Any]) -> str:
    ends = " and ".join(f"{abs(m):.1f} {'under' if m > 0 else 'over'}" for m in t["margins"])
    return f"{'flagged' if t['flagged'] else 'not flagged'}, its lowest upper ends {ends} their floors"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_records(records: list[dict[str, Any]], fmt: str, columns: list[str], empty: str) -> None:
    from pipeline.cli.table import print_json, render, say_empty

    if fmt == "json":
        if not records:
            say_empty(empty)
        print_json(records)
        return
    render(columns, [tuple(_cell(r.get(c)) for c in columns) for r in records], empty=empty)


def _cell(value: object) -> object:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return _datetime(value) if value is not None else "-"


def cmd_dashboards_build(args: argparse.Namespace) -> int:
    from dashboards import build_all

    for path in build_all(Path(args.out), database=args.database):
        print(path)
    return 0


def cmd_metrics_list(args: argparse.Namespace) -> int:
    from pipeline.catalog import CATALOG

    for m in CATALOG.values():
        print(f"{m.name:28} {m.dimension:22} {m.unit:12} {m.description}")
    return 0


def cmd_metrics_query(args: argparse.Namespace) -> int:
    from pipeline.cli.table import render
    from pipeline.usecases import nodata

    params = {"names": ",".join(args.names), "since": args.since, "by": ",".join(args.by)}
    params |= {k: v for k, v in (("step", args.step), ("product", args.product), ("version", args.version)) if v}
    answer = nodata.read(_settings(args), "metrics/query", params)
    scope = "".join(f" of {k} {v}" for k, v in (("product", args.product), ("version", args.version)) if v)
    render(answer["columns"], [tuple(_datetime(v) for v in row) for row in answer["rows"]], args.format,
           empty=f"no data for {', '.join(args.names)}{scope} in the last {args.since}")  # fmt: skip
    return 0


def _datetime(value: object) -> object:
    """A time bucket that came back from the worker's API as text, as the datetime it was."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _metric(name: str) -> str:
    """A metric name checked against the catalog while parsing: unknown is a usage error, with a suggestion."""
    from pipeline.catalog import UnknownMetric, get

    try:
        get(name)
    except UnknownMetric as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name


def _window(text: str) -> str:
    """``--since``/``--step`` checked while parsing, so a bad one is a usage error (exit 2); passed on as given."""
    from pipeline.catalog import parse_since

    try:
        parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _time(text: str) -> str:
    """An ISO time with a timezone, checked while parsing (exit 2 otherwise); passed on as given."""
    from pipeline.usecases.reads import parse_time

    try:
        parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _window_or_time(text: str) -> str:
    """``alerts backtest --since``: a duration back from ``--until``, or an ISO time (it has a ``T``)."""
    return _time(text) if "T" in text else _window(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env PULSE_KAFKA_BOOTSTRAP, default 127.0.0.1:9092)")
    p.add_argument("--data-dir", help="data folder for embedded ClickHouse and Faust (env PULSE_DATA_DIR)")
    p.add_argument("--topic-prefix", help="topic prefix (env PULSE_TOPIC_PREFIX, default pulse)")


def _scratch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scratch-database",
        help="with a ClickHouse server (PULSE_CLICKHOUSE_DSN): a database this command may fill with synthetic "
        "data (required there; the embedded default needs none)",
    )


def _version() -> str:
    """The installed distribution's version (pyproject's), as ``pip show productpulse`` says it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("productpulse")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="ProductPulse: product telemetry through Kafka and Faust into ClickHouse. "
        "Settings come from PULSE_* environment variables; flags override them.",
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback when a command fails")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a Faust worker: ingest events into ClickHouse until stopped")
    _common(p)
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(fn=cmd_worker)

    config = sub.add_parser("config", help="the effective settings").add_subparsers(
        dest="config_command", required=True
    )
    p = config.add_parser(
        "show",
        help="every PULSE_ setting, its value and where it came from (flag, env, default), secrets masked",
        description="Prints every PULSE_ setting with the value this command would use and its source. Secrets "
        "are never shown: passwords, tokens, keys and write keys as ***, a DSN as http://user:***@host/db, a "
        "webhook URL as its scheme and host.",
    )
    _common(p)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_config_show)

    db = sub.add_parser("db", help="ClickHouse schema").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    _common(p)
    p.set_defaults(fn=cmd_db_migrate)

    p = sub.add_parser(
        "demo",
        help="the main job on embedded defaults: local Kafka, worker, synthetic traffic, per-product report",
        description="Starts (or reuses) the local Kafka, runs a worker against an embedded ClickHouse, "
        "sends two weeks of synthetic traffic (ending at the last UTC midnight, so every run tells the same "
        "story) for --duration seconds, waits until it is all stored and prints a per-product table read "
        "back from ClickHouse, then the pages and redesign candidates the alert rules found. Stops whatever "
        "it started.",
    )
    _common(p)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of traffic to send (default 30)")
    # 300k events over the compressed fortnight: ~190 users per product, enough for the scorecards to tell a
    # decaying product from noise (below ~100 users, day-to-day noise can push a healthy product under a floor).
    p.add_argument("--rate", type=int, default=10_000, help="events per second to send (default 10000)")
    p.add_argument(
        "--scenario", default="regression_and_decay", help="synthetic scenario (default regression_and_decay)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the product table as JSON lines (for scripts)")
    p.add_argument("--serve", action="store_true", help="after the report, serve the built-in dashboards until Ctrl-C")
    _scratch(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser(
        "bench",
        help="throughput, CPU and memory of the worker against a ceiling, textbook Faust, quixstreams and a naive "
        "consumer on the same topic; also freshness and soak",
        description="Produces N synthetic events once (--format single: one event per message; pack: the SDK's "
        "packs), then runs every contender on that topic from a cold consumer group until its results are "
        "queryable, checks each one's stored totals against the ground truth, and prints events/s, CPU seconds "
        "per million events, peak RSS and the ratio to ProductPulse. `freshness` and `soak` run a steady load.",
    )
    _common(p)
    from pipeline.tools.bench import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    _scratch(p)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("release", help="announce a release of a product on the releases topic")
    _common(p)
    p.add_argument("--product", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--channel", default="stable")
    p.add_argument("--rollout-pct", type=float, default=100.0)
    p.add_argument("--commit", default="")
    p.add_argument("--released-at", type=_time, help="ISO time with a timezone (default now)")
    p.set_defaults(fn=cmd_release)

    p = sub.add_parser(
        "load",
        help="send synthetic traffic into Kafka (no worker)",
        description="Sends realistic synthetic events - diurnal traffic, several products and releases, users with "
        "sessions, features, feedback and tickets - at --rate events/s for --duration seconds, covering "
        "--span-days of event time ending now (a compressed clock).",
    )
    _common(p)
    p.add_argument("--duration", type=float, default=60.0, help="seconds to send for (default 60)")
    p.add_argument("--rate", type=int, default=5000, help="events per second (default 5000)")
    p.add_argument("--span-days", type=float, default=14.0, help="event-time span, ending now (default 14)")
    p.add_argument("--scenario", default="regression_and_decay", help="steady or regression_and_decay")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(fn=cmd_load)

    p = sub.add_parser("naive", help="the naive baseline consumer that `pulse bench` measures against")
    _common(p)
    p.set_defaults(fn=cmd_naive)

    p = sub.add_parser(
        "collector",
        help="HTTP collector: POST /v1/events for services that do not speak Kafka",
        description='Serves POST /v1/events (one event, an array or {"events": [...]}, gzip allowed) '
        "authenticated by per-product write keys (env PULSE_COLLECTOR_WRITE_KEYS=product=key,...), and "
        "GET /healthz. Answers 202 only after Kafka acknowledged every event of the request.",
    )
    _common(p)
    p.add_argument("--host", help="address to bind (env PULSE_COLLECTOR_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (env PULSE_COLLECTOR_PORT, default 8088)")
    p.set_defaults(fn=cmd_collector)

    alerts = sub.add_parser("alerts", help="alert rules: check, test, run, backtest, status").add_subparsers(
        dest="alerts_command", required=True
    )
    p = alerts.add_parser("check", help="validate rule files (errors name file, group, rule and field)")
    _common(p)
    p.add_argument("files", nargs="*", help="rule files or folders (default: PULSE_ALERT_RULES_DIR or the shipped set)")
    p.add_argument("--against-store", action="store_true",
                   help="also warn, per product, when a rule's min_volume is more than the product ever had in "
                   "the rule's window (the rule could never fire for it)")  # fmt: skip
    p.add_argument("--since", default="7d", help="how far back --against-store looks (default 7d)")
    p.set_defaults(fn=cmd_alerts_check)
    p = alerts.add_parser(
        "test",
        help="run rule unit tests (input series -> expected alerts), like promtool test rules",
        description="Each test file names rule files, input series per metric or signal (promtool's values "
        "notation, e.g. '0.99x10 0.90x20'), evaluation times and the alerts expected to fire then.",
    )
    p.add_argument("files", nargs="*", help="test files or folders (default: the shipped rules' tests)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_alerts_test)
    p = alerts.add_parser(
        "run",
        help="evaluate the rules against the store (when no worker holds it) and notify",
        description="The evaluator a worker runs as a leader-only timer, from the command line: for a store no "
        "worker holds, or a one-off evaluation at a given time (--at, no notifications are repeated: state is kept "
        "in alert_events).",
    )
    _common(p)
    p.add_argument("--once", action="store_true", help="evaluate once and exit (default: every interval until Ctrl-C)")
    p.add_argument("--at", type=_time, help="evaluate at this time (ISO with timezone) instead of now; implies --once")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_alerts_run)
    p = alerts.add_parser(
        "backtest",
        help="replay the rules over stored history without notifying: when each alert would have fired",
    )
    _common(p)
    p.add_argument(
        "--since",
        default="7d",
        type=_window_or_time,
        help="how far back (90s, 1h30m, 28d, 2w) or an ISO time (default 7d)",
    )
    p.add_argument("--until", type=_time, help="end (ISO time with timezone; default now)")
    p.add_argument(
        "--step",
        default="1h",
        type=_window,
        help="evaluation step (default 1h; each step costs ~0.35 s for the shipped rules)",
    )
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_alerts_backtest)
    p = alerts.add_parser("status", help="pending and firing alerts now (asks the worker when it holds the store)")
    _common(p)
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_alerts_status)

    p = sub.add_parser(
        "scorecard",
        help="products x dimension scores, the redesign-candidate flag and why",
        description="Scores each product 0-100 on business impact, customer experience, post-launch support and "
        "performance against its own baseline; a product below the floor on two dimensions for a sustained "
        "period (or whose composite falls release after release) is a redesign candidate, with evidence.",
    )
    _common(p)
    p.add_argument("--at", type=_time, help="score at this time (ISO with timezone; default now)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_scorecard)

    p = sub.add_parser(
        "releases",
        help="recent releases against their predecessors: the regression verdicts",
        description="One row per release and signal: how its baseline was chosen (arrival, baseline_version, "
        "comparison: canary over the same hours, or before/after), both values, the ratio's always-valid bounds "
        "and the verdict. moves_until is when a later look can no longer change it (the next version's arrival, "
        "or a week after this one's; latency before/after: its first day); 'final' once that has passed.",
    )
    _common(p)
    p.add_argument("--at", type=_time, help="judge at this time (ISO with timezone; default now)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_releases)

    p = sub.add_parser(
        "eval",
        help="the release judge over a scenario library with known truth: pages, delays, false alarms",
        description="Simulates every scenario file (YAML) under --scenarios for each seed, looks at every release "
        "hourly as the evaluator would, and prints severe regressions paged and their delay in event time, A/A "
        "releases paged, healthy products paged and false pages per product-month, then the delay table by effect "
        "and volume (--least adds the delay the same test reaches on expected counts); then the redesign flag's "
        "precision, recall and flag flips per product-month on simulated products with known truth, with 28 and 75 "
        "days of data.",
    )
    from pipeline.usecases.decisions import DEFAULT_SCENARIOS

    p.add_argument(
        "--scenarios", default=str(DEFAULT_SCENARIOS), help="folder of scenario files (default: %(default)s)"
    )
    p.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    p.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    p.add_argument("--least", action="store_true", help="also the least delay on expected counts (slower)")
    p.add_argument("--format", default="table", choices=["table", "json"])
    p.set_defaults(fn=cmd_eval)

    boards = sub.add_parser("dashboards", help="Grafana dashboards as code").add_subparsers(
        dest="dashboards_command", required=True
    )
    p = boards.add_parser(
        "build",
        help="render every dashboard definition as Grafana JSON (committed under dashboards/grafana)",
        description="Writes <uid>.json per dashboard for the grafana-clickhouse-datasource plugin and Prometheus; "
        "files are rewritten only when their content changes. Provision them with deploy/grafana/provisioning.",
    )
    p.add_argument("--out", default=str(DASHBOARDS_DIR), help=f"output folder (default {DASHBOARDS_DIR})")
    p.add_argument("--database", default="pulse", help="ClickHouse database the panels query (default pulse)")
    p.set_defaults(fn=cmd_dashboards_build)

    metrics = sub.add_parser("metrics", help="the metric catalog").add_subparsers(dest="metrics_command", required=True)
    p = metrics.add_parser("list", help="list catalog metrics")
    p.set_defaults(fn=cmd_metrics_list)
    p = metrics.add_parser("query", help="query catalog metrics from ClickHouse")
    _common(p)
    p.add_argument("names", nargs="+", type=_metric, help="metric names (see `pulse metrics list`)")
    p.add_argument("--product")
    p.add_argument("--version")
    p.add_argument("--since", default="7d", type=_window, help="look-back window, e.g. 90s, 1h30m, 7d, 2w (default 7d)")
    p.add_argument("--step", type=_window, help="time bucket, e.g. 1h or 30m; omit for one value per group")
    p.add_argument(
        "--by",
        nargs="*",
        default=["product"],
        choices=["product", "version", "feature", "goal"],
        help="group keys (default product); feature and goal apply to per-feature and per-goal metrics",
    )
    p.add_argument("--format", default="table", choices=["table", "json", "csv"])
    p.set_defaults(fn=cmd_metrics_query)
    _debug_everywhere(parser)
    return parser


def _debug_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after any (sub)command too, e.g. ``pulse worker --debug``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if "--debug" not in child._option_string_actions:
                    child.add_argument(
                        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                    )
                _debug_everywhere(child)


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports POLLERR on such a write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError):  # stdout closed or replaced by an object without a file descriptor
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.fn(args) or 0)
        sys.stdout.flush()  # here, not at exit: a reader that went away (`| head`) is handled below
        return code
    except BrokenPipeError as exc:
        if not _reader_gone():  # a socket's broken pipe (Kafka, HTTP): a failure like any other
            if args.debug:
                raise
            print(f"pulse: {type(exc).__name__}: {exc} (run with --debug for a traceback)", file=sys.stderr)
            return 1
        # `pulse scorecard --format json | head -1`: the reader has all it wanted. Exit as a process killed by
        # SIGPIPE does (128 + 13, what `yes | head` reports), silently; stdout goes to /dev/null so that the
        # interpreter's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ValidationError as exc:
        if args.debug:
            raise
        for line in describe_invalid(exc):
            print(f"pulse: invalid setting {line}", file=sys.stderr)
        return 2
    except UsageError as exc:  # asked for what cannot be done as asked: argparse's form and exit code
        if args.debug:
            raise
        print(f"pulse: error: {_scrub(str(exc))}", file=sys.stderr)
        return 2
    except PulseError as exc:  # the project's own refusals: a clear message, no traceback
        if args.debug:
            raise
        problems = getattr(exc, "problems", None) or [str(exc)]
        for line in problems:  # e.g. every problem of every rule file, one line each
            print(f"pulse: {_scrub(str(line))}", file=sys.stderr)
        return 2 if getattr(exc, "problems", None) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence prints, not a traceback
        if args.debug:
            raise
        print(f"pulse: {type(exc).__name__}: {_scrub(str(exc))} (run with --debug for a traceback)", file=sys.stderr)
        return 1


def _scrub(message: str) -> str:
    """An error message with every configured secret masked: a client library's error may quote its DSN or URL."""
    from pipeline.masking import redact

    try:
        return redact(message, load_settings())
    except ValidationError:  # settings that do not load hold no secret this command used
        return message
