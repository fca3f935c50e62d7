"""The health job: the leader computes release verdicts and scorecards on a schedule, whatever rules exist.

Verdicts and scorecards used to be computed only as a side effect of a rule
that referenced them, so a rule set without the release rule left
``release_verdicts`` (and the dashboards that read it) empty. Now
:class:`HealthJob` runs as its own leader-only timer (``PULSE_HEALTH_INTERVAL_S``)
and stores both; the live evaluator's release and redesign signals read the
newest stored results (:func:`stored_release_samples`,
:func:`stored_redesign_samples`) when they are younger than ``max_age``, and
compute (and store) them only when there are none - the first evaluation
after a start. The backtest, which evaluates the past, always computes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from alerts.sample import Sample

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthJob:
    """Computes and stores every release verdict and every scorecard at ``now``."""

    database: str

    def run(self, client: Client, now: datetime | None = None) -> dict[str, int]:
        from alerts.regression import release_verdicts, store_verdicts
        from alerts.scorecard import compute_scorecards, store_scorecards

        now = now or datetime.now(UTC)
        started = time.monotonic()
        verdicts = release_verdicts(client, self.database, now)
        store_verdicts(client, self.database, verdicts, now)
        cards = compute_scorecards(client, self.database, now)
        store_scorecards(client, self.database, cards, now)
        out = {"verdicts": len(verdicts), "scorecards": len(cards)}
        log.info("event=health_job verdicts=%d scorecards=%d took_s=%.2f", out["verdicts"], out["scorecards"],
                 time.monotonic() - started)  # fmt: skip
        return out


def _latest(client: Client, table: str, now: datetime, max_age: timedelta) -> tuple[str, dict[str, Any]]:
    """A WHERE clause selecting the newest stored run in ``(now - max_age, now]``, and its parameters.

    Read without FINAL: the tables keep the newest ``at`` per release (or product), so a run at a later
    time - a replay, ``pulse alerts run --at`` - would hide the run asked for; its rows stay readable until
    a merge drops them, and then no run is found and the caller computes.
    """
    params = {"now": now, "oldest": now - max_age}
    at = client.query(
        f"SELECT max(at), count() FROM {table} WHERE at <= {{now:DateTime64(3)}} AND at > {{oldest:DateTime64(3)}}",
        parameters=params,
    ).result_rows[0]
    if not at[1]:
        return "", params
    return "at = {at:DateTime64(3)}", {**params, "at": at[0]}


def stored_release_samples(client: Client, database: str, now: datetime, max_age: timedelta) -> list[Sample] | None:
    """The release signal from the newest stored verdicts, or None when there are none younger than ``max_age``."""
    from alerts.regression import _COLUMNS, Verdict, samples

    where, params = _latest(client, f"{database}.release_verdicts", now, max_age)
    if not where:
        return None
    rows = client.query(
        f"SELECT {', '.join(_COLUMNS)} FROM {database}.release_verdicts WHERE {where}", parameters=params
    ).result_rows
    latest = {(r[1], r[2], r[6]): r for r in rows}  # one run's rows, whether or not a later run replaced them
    return samples([Verdict.from_stored(r) for r in latest.values()])


def stored_redesign_samples(client: Client, database: str, now: datetime, max_age: timedelta) -> list[Sample] | None:
    """The redesign signal from the newest stored scorecards (their composite rows carry the whole card)."""
    where, params = _latest(client, f"{database}.product_scorecards", now, max_age)
    if not where:
        return None
    rows = client.query(
        f"SELECT product, redesign_candidate, evidence FROM {database}.product_scorecards "
        f"WHERE {where} AND dimension = 'composite'",
        parameters=params,
    ).result_rows
    out = []
    for product, candidate, evidence in {r[0]: r for r in rows}.values():
        card = json.loads(evidence)
        dims = card.get("dimensions", {})
        out.append(Sample(
            labels={"product": product},
            value=1.0 if candidate else 0.0,
            evidence={
                "dimensions_below_floor": [n for n, d in dims.items() if d.get("below_floor")],
                "composite": (card.get("composite") or {}).get("score"),
                "scores": {n: d.get("score") for n, d in dims.items()},
                "evidence": card.get("evidence", []),
                **({"sentences": card["sentences"]} if "sentences" in card else {}),
            },
        ))  # fmt: skip
    return out
