"""The ``pulse`` command: the composition root.

Each command parses its arguments, builds :class:`~pipeline.settings.Settings`
and calls one function in its room. No logic lives here. Worker-side rooms
(consumers) are imported inside their commands so an emit-only install works.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import UsageError
from pipeline.settings import Settings, describe_invalid, load_settings

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
    from consumers.app import run_worker
    from pipeline.cli import api, reads

    settings = _settings(args)
    pages = api.pages(settings, reads.READERS) + api.dashboard_pages(settings)
    run_worker(settings, pages=pages, loglevel=args.loglevel)
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from pipeline import clickhouse

    settings = _settings(args)
    with clickhouse.opened(settings) as client:
        applied = clickhouse.migrate(client, settings.clickhouse_database, settings.events_ttl_days)
    print(f"applied migrations: {applied or 'none (schema up to date)'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.cli.table import print_json_tables, render
    from pipeline.tools.demo import run_demo
    from pipeline.tools.scratch import scratch_settings

    settings = scratch_settings(_settings(args), args.scratch_database, "pulse demo")
    tables = run_demo(settings, duration_s=args.duration, rate=args.rate, scenario=args.scenario, seed=args.seed)
    if args.json:
        print_json_tables((t.name, t.columns, t.rows) for t in tables)
    else:
        for t in tables:
            render(t.columns, t.rows, title=t.title)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from pipeline.tools.bench import run_bench
    from pipeline.tools.scratch import scratch_settings

    settings = scratch_settings(_settings(args), args.scratch_database, "pulse bench")
    return run_bench(settings, events=args.events, baseline_events=args.baseline_events, json_out=args.json)


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
        em.release(release)
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
    from pipeline.cli import api, reads
    from pipeline.cli.table import render

    params = {"names": ",".join(args.names), "since": args.since, "by": ",".join(args.by)}
    params |= {k: v for k, v in (("step", args.step), ("product", args.product), ("version", args.version)) if v}
    answer = api.read(_settings(args), "metrics/query", reads.metrics_query, params)
    render(answer["columns"], [tuple(_datetime(v) for v in row) for row in answer["rows"]], args.format)
    return 0


def _datetime(value: object) -> object:
    """A time bucket that came back from the worker's API as text, as the datetime it was."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="ProductPulse: product telemetry through Kafka and Faust into ClickHouse. "
        "Settings come from PULSE_* environment variables; flags override them.",
    )
    parser.add_argument("--debug", action="store_true", help="show a traceback when a command fails")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("worker", help="run a Faust worker: ingest events into ClickHouse until stopped")
    _common(p)
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(fn=cmd_worker)

    db = sub.add_parser("db", help="ClickHouse schema").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    _common(p)
    p.set_defaults(fn=cmd_db_migrate)

    p = sub.add_parser(
        "demo",
        help="the main job on embedded defaults: local Kafka, worker, synthetic traffic, per-product report",
        description="Starts (or reuses) the local Kafka, runs a worker against an embedded ClickHouse, "
        "sends synthetic traffic for --duration seconds, waits until it is all stored and prints a "
        "per-product table read back from ClickHouse. Stops whatever it started.",
    )
    _common(p)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of traffic to send (default 30)")
    p.add_argument("--rate", type=int, default=5000, help="events per second to send (default 5000)")
    p.add_argument(
        "--scenario", default="regression_and_decay", help="synthetic scenario (default regression_and_decay)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the product table as JSON lines (for scripts)")
    _scratch(p)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser(
        "bench",
        help="end-to-end throughput and worker RSS against a naive consumer baseline",
        description="Produces N events, runs the Faust worker until every row is in ClickHouse and measures "
        "events/s and peak RSS; then the same for a naive kafka-python consumer that inserts small batches. "
        "Prints both and the ratio.",
    )
    _common(p)
    p.add_argument("--events", type=int, default=1_000_000, help="events to produce (default 1,000,000)")
    p.add_argument(
        "--baseline-events", type=int, default=None, help="events for the naive baseline (default: same as --events)"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON too")
    _scratch(p)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("release", help="announce a release of a product on the releases topic")
    _common(p)
    p.add_argument("--product", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--channel", default="stable")
    p.add_argument("--rollout-pct", type=float, default=100.0)
    p.add_argument("--commit", default="")
    p.add_argument("--released-at", help="ISO time with a timezone (default now)")
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
    p.add_argument("names", nargs="+", help="metric names (see `pulse metrics list`)")
    p.add_argument("--product")
    p.add_argument("--version")
    p.add_argument("--since", default="7d", help="look-back window, e.g. 15m, 6h, 7d (default 7d)")
    p.add_argument("--step", help="time bucket, e.g. 1h; omit for one value per group")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except ValidationError as exc:
        if args.debug:
            raise
        for line in describe_invalid(exc):
            print(f"pulse: invalid setting {line}", file=sys.stderr)
        return 2
    except UsageError as exc:
        if args.debug:
            raise
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence prints, not a traceback
        if args.debug:
            raise
        print(f"pulse: {type(exc).__name__}: {exc} (run with --debug for a traceback)", file=sys.stderr)
        return 1
