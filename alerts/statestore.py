"""Alert state in ClickHouse (``alert_events``): written once per evaluation, read back at start and by
:func:`status` (``pulse alerts status``).

Every evaluation inserts one batch: a row per alert that is not inactive (its
progress) and per transition (``transition`` names it). The newest row of a
fingerprint is the alert's state - ``last_match_at`` (the ``keep_firing_for``
clock) and ``last_sent_at`` (notification bookkeeping) included - so a
restarted evaluator continues the same alerts: it neither re-notifies, nor
forgets a firing alert, nor resolves one early. Times that are not set are
stored as the Unix epoch (the columns are not Nullable) and read back as None.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alerts.statemachine import Alert

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = [
    "at", "rule_group", "alertname", "fingerprint", "labels", "annotations", "state", "transition", "value",
    "active_at", "fired_at", "last_match_at", "resolved_at", "last_sent_at", "evidence",
]  # fmt: skip
LIVE_STATES = ("pending", "firing", "resolved")


def _t(value: datetime | None) -> datetime:
    return value if value is not None else EPOCH


def _from_t(value: datetime) -> datetime | None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return None if value <= EPOCH else value


def row(alert: Alert, transition: str, at: datetime) -> list[Any]:
    return [
        at, alert.group, alert.alertname, alert.fingerprint, dict(alert.labels), dict(alert.annotations), alert.state,
        transition, alert.value, _t(alert.active_at), _t(alert.fired_at), _t(alert.last_match_at),
        _t(alert.resolved_at), _t(alert.last_sent_at), json.dumps(alert.evidence, default=str, allow_nan=True),
    ]  # fmt: skip


def write(client: Client, database: str, rows: Sequence[tuple[Alert, str]], at: datetime) -> int:
    """Insert one evaluation's rows in one insert; returns how many."""
    if not rows:
        return 0
    client.insert(f"{database}.alert_events", [row(a, t, at) for a, t in rows], column_names=COLUMNS)
    return len(rows)


def _alert(r: Sequence[Any]) -> Alert:
    at, group, name, fp, labels, annotations, state, _tr, value, active, fired, match, resolved, sent, evidence = r
    try:
        ev = json.loads(evidence) if evidence else {}
    except ValueError:
        ev = {}
    return Alert(
        alertname=name,
        group=group,
        fingerprint=fp,
        labels=dict(labels),
        state=state,
        active_at=_from_t(active) or _from_t(at) or EPOCH,
        value=float(value) if value is not None else math.nan,
        annotations=dict(annotations),
        fired_at=_from_t(fired),
        last_match_at=_from_t(match),
        resolved_at=_from_t(resolved),
        last_sent_at=_from_t(sent),
        evidence=ev if isinstance(ev, dict) else {"evidence": ev},
    )


def load(client: Client, database: str, states: Sequence[str] = LIVE_STATES) -> list[tuple[Alert, datetime]]:
    """(alert, time of its newest row) for every fingerprint whose newest state is one of ``states``."""
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM (SELECT {', '.join(COLUMNS)} FROM {database}.alert_events "
        "ORDER BY fingerprint, at DESC LIMIT 1 BY fingerprint) WHERE state IN {states:Array(String)} "
        "ORDER BY alertname, fingerprint"
    )
    rows = client.query(sql, parameters={"states": list(states)}).result_rows
    return [(_alert(r), _from_t(r[0]) or EPOCH) for r in rows]


def _none_if_nan(v: float) -> float | None:
    return None if math.isnan(v) else v  # JSON has no NaN


def status(client: Client, database: str) -> list[dict[str, Any]]:
    """Pending and firing alerts as last evaluated (newest stored state), firing first."""
    out = []
    for alert, at in load(client, database, ("pending", "firing")):
        out.append(
            {
                "alertname": alert.alertname,
                "labels": dict(alert.labels),
                "state": alert.state,
                "since": alert.since.isoformat(),
                "value": _none_if_nan(alert.value),
                "annotations": dict(alert.annotations),
                "evaluated_at": at.isoformat(),
            }
        )
    return sorted(out, key=lambda a: (a["state"] != "firing", a["alertname"], sorted(a["labels"].items())))
