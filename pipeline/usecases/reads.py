"""The read use cases as functions of (store, settings, string parameters) -> JSON-ready values.

Each one serves twice: called in-process by the CLI's read command when the
store is free, and mounted on a running worker's read API
(:mod:`pipeline.usecases.api`) when it is not. Parameters are strings because
they travel in a query string; :data:`READERS` names each one by its API path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from threading import Event
from typing import TYPE_CHECKING, Any, Protocol, cast

from pipeline import catalog
from pipeline.errors import PulseError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from pipeline.catalog.metrics import GroupKey


class Reader(Protocol):
    """What a read computes from the store and its string parameters; the result is JSON-serialisable.

    ``cancel``, when given, is set once nobody waits for the answer any more (the worker's read API sets it on
    a timeout, a client that left, or shutdown): a reader that loops checks it and raises :class:`ReadCancelled`.
    """

    def __call__(
        self, client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
    ) -> Any: ...


class ReadCancelled(PulseError):
    """Nobody waits for this read any more; it stopped between two steps."""


def metrics_query(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> dict[str, Any]:
    """``names`` (comma-separated), ``since`` (7d), ``step``, ``by`` (comma-separated), ``product``, ``version``."""
    names = [n for n in params.get("names", "").split(",") if n]
    if not names:
        raise ValueError("names: give at least one catalog metric")
    by = tuple(b for b in params.get("by", "product").split(",") if b)
    step = params.get("step")
    columns, rows = catalog.query(
        client,
        settings.clickhouse_database,
        names,
        _before(datetime.now(UTC), params.get("since", "7d"), "since"),
        product=params.get("product") or None,
        version=params.get("version") or None,
        by=by,  # type: ignore[arg-type]
        step_s=int(_duration(step, "step").total_seconds()) if step else None,
    )
    return {"columns": columns, "rows": [list(r) for r in rows]}


def alerts_status(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> list[dict[str, Any]]:
    """Pending and firing alerts as last evaluated."""
    from alerts.statestore import status

    return status(client, settings.clickhouse_database)


def alerts_backtest(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> list[dict[str, Any]]:
    """``since`` (7d), ``until`` (now), ``step`` (1h): every transition the rules would have made.

    Bounded, since anybody on the web port may ask: at most ``web_backtest_max_days`` of window and
    ``web_backtest_max_steps`` steps (a ValueError naming the limit, a 400 from the API), and it stops
    between steps once ``cancel`` is set.
    """
    from alerts.backtest import backtest
    from alerts.rules import rules_paths

    until = parse_time(params["until"]) if params.get("until") else datetime.now(UTC)
    since = (
        parse_time(params["since"])
        if "T" in params.get("since", "")
        else _before(until, params.get("since", "7d"), "since")
    )
    step = _duration(params.get("step", "1h"), "step")
    window = until - since
    if window.total_seconds() > settings.web_backtest_max_days * 86_400:
        raise ValueError(
            f"backtest window of {window.total_seconds() / 86_400:.1f} days is over the limit of "
            f"{settings.web_backtest_max_days} days (PULSE_WEB_BACKTEST_MAX_DAYS)"
        )
    steps = int(window / step) + 1 if window.total_seconds() >= 0 else 0
    if steps > settings.web_backtest_max_steps:
        raise ValueError(
            f"backtest of {steps} steps is over the limit of {settings.web_backtest_max_steps} steps "
            "((until - since) / step; PULSE_WEB_BACKTEST_MAX_STEPS): give a larger step or a shorter window"
        )

    def check(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise ReadCancelled(f"backtest cancelled after {done} of {total} steps")

    return backtest(
        client, settings.clickhouse_database, rules_paths(settings), since, until, step,
        interval_s=settings.alert_eval_interval_s, progress=check,
    )  # fmt: skip


def scorecard(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> list[dict[str, Any]]:
    """Every product's dimension scores now, the redesign-candidate flag and its evidence."""
    from alerts.scorecard import compute_scorecards

    at = parse_time(params["at"]) if params.get("at") else datetime.now(UTC)
    return [card.to_json() for card in compute_scorecards(client, settings.clickhouse_database, at)]


def release_verdicts(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> list[dict[str, Any]]:
    """Recent releases against their predecessors, one row per signal."""
    from alerts.regression import release_verdicts as verdicts

    at = parse_time(params["at"]) if params.get("at") else datetime.now(UTC)
    return [v.to_json() for v in verdicts(client, settings.clickhouse_database, at)]


def _duration(text: str, name: str) -> timedelta:
    """A duration parameter (``7d``); one beyond what a date can hold is a ValueError naming it, not a 500."""
    try:
        return catalog.parse_since(text)
    except OverflowError:
        raise ValueError(f"{name}: {text!r} is too long a duration") from None
    except ValueError as exc:  # the grammar's own message, named for the parameter
        raise ValueError(f"{name}: {exc}") from None


def _before(at: datetime, text: str, name: str) -> datetime:
    """``at`` minus the duration parameter ``text``; a ValueError naming it when that lies before year 1."""
    try:
        return at - _duration(text, name)
    except OverflowError:
        raise ValueError(f"{name}: {text!r} reaches back before the calendar begins") from None


def parse_time(text: str) -> datetime:
    """An ISO time given by a user, in UTC; refuses a time without a timezone (it would be ambiguous)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r}: give a time with a timezone, e.g. 2026-11-25T10:00:00Z")
    return value.astimezone(UTC)


def rule_volumes(
    client: Client, settings: Settings, params: Mapping[str, str], cancel: Event | None = None
) -> list[dict[str, Any]]:
    """Rules that could never fire for a product at its observed volume: ``pulse alerts check --against-store``.

    For every rule with a ``min_volume`` metric, the most that metric reached in any window as long as the
    rule's longest (``widen_to``, else its volume window) over the last ``since`` (7d), per series, in
    windows aligned to that length; a series whose most stays below ``min`` is reported.
    """
    from alerts.rules import load_rules, rules_paths

    since = _before(datetime.now(UTC), params.get("since", "7d"), "since")
    out: list[dict[str, Any]] = []
    for loaded in load_rules(rules_paths(settings)).rules:
        rule, mv = loaded.rule, loaded.rule.min_volume
        if mv is None or mv.metric is None or rule.kind == "signal":
            continue
        window = mv.widen_to or mv.window or rule.window_s
        by = cast("tuple[GroupKey, ...]", rule.group_by)
        _, rows = catalog.query(client, settings.clickhouse_database, [mv.metric], since, by=by, step_s=int(window))
        most: dict[tuple[str, ...], float] = {}
        for row in rows:
            key, value = tuple(str(k) for k in row[1:-1]), row[-1]
            most[key] = max(most.get(key, 0.0), float(value or 0.0))
        for key, peak in sorted(most.items()):
            if peak < mv.min:
                series = dict(zip(rule.group_by, key, strict=True))
                out.append({"alert": rule.alert, "series": series, "volume_metric": mv.metric, "window_s": window,
                            "most_seen": peak, "min": mv.min})  # fmt: skip
    return out


READERS: dict[str, Reader] = {
    "alerts/volumes": rule_volumes,
    "metrics/query": metrics_query,
    "alerts/status": alerts_status,
    "alerts/backtest": alerts_backtest,
    "scorecard": scorecard,
    "releases": release_verdicts,
}
