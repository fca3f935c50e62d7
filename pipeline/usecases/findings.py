"""What the alert rules found in the demo's data: the pages that fired and the redesign candidates.

``pulse demo`` runs on a compressed clock (two weeks of event time in seconds),
so the live evaluator would see none of it happen. Instead the demo replays
the shipped rules over the stored event time with the backtest, and scores the
products at the end of the span - both read only the pipeline's own output.
The scorecards and release verdicts are stored too, so the built-in dashboards
(``pulse demo --serve``) show them at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from pipeline.settings import Settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

BACKTEST_STEP = timedelta(hours=2)  # 14 days in ~170 steps; detection times are this coarse


class Table(NamedTuple):
    """A findings table, shaped like the demo's own tables (:data:`pipeline.tools.demo.Findings` takes the
    tuple): use cases do not import the tools, and the tools know nothing of alerts."""

    name: str
    title: str
    columns: list[str]
    rows: list[tuple[Any, ...]]


def demo_findings(client: Client, settings: Settings, start: datetime, end: datetime, console: Console) -> list[Table]:
    """Tables of the pages that fired (with when) and of the redesign candidates (with why)."""
    from alerts.backtest import backtest
    from alerts.regression import release_verdicts, store_verdicts
    from alerts.rules import rules_paths
    from alerts.scorecard import compute_scorecards, store_scorecards

    db = settings.clickhouse_database
    columns = (TextColumn("replaying the alert rules over the event time"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("backtest", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        transitions = backtest(client, db, rules_paths(settings), start, end, BACKTEST_STEP, progress=advance)
    pages = [t for t in transitions if t["state"] == "firing" and t["labels"].get("severity") == "page"]
    released = {
        (product, version): at
        for product, version, at in client.query(
            f"SELECT product, version, max(released_at) FROM {db}.releases GROUP BY product, version"
        ).result_rows
    }
    page_rows = []
    for t in pages:
        product, version = t["labels"].get("product", ""), t["labels"].get("version", "")
        fired = datetime.fromisoformat(t["at"])
        release = released.get((product, version))
        delay = _hours(fired - release.replace(tzinfo=fired.tzinfo)) if release is not None and version else ""
        page_rows.append((t["alertname"], product, version, fired, delay, t["value"]))
    cards = compute_scorecards(client, db, end)
    store_scorecards(client, db, cards, end)
    store_verdicts(client, db, release_verdicts(client, db, end), end)
    candidate_rows = [
        (card.product, ", ".join(card.dimensions_below), " ".join(card.sentences))
        for card in cards
        if card.redesign_candidate
    ]
    return [
        Table("pages", "Pages the rules fired over the demo's event time (backtest)",
              ["alertname", "product", "version", "fired_at", "after_release", "value"], page_rows),
        Table("redesign_candidates", "Redesign candidates at the end of the span (scorecard)",
              ["product", "dimensions_below_floor", "evidence"], candidate_rows),
    ]  # fmt: skip


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"
