"""``pulse eval``: the release judge over a scenario library and the redesign flag over simulated products, with a
progress bar, as figures and a table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "decisions" / "scenarios"


def evaluate(folder: Path, seeds: Sequence[int], *, least: bool = False) -> dict[str, Any]:
    """The confusion figures and the delay table of :mod:`alerts.harness` over ``folder`` for ``seeds``, and the
    redesign flag's precision, recall and flips (:mod:`alerts.harness.redesign`) per span of data."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from alerts.harness import redesign
    from alerts.harness.run import delay_table, run, summary
    from alerts.harness.scenario import library

    if not folder.is_dir() or not any(folder.glob("*.yaml")):
        raise FileNotFoundError(f"{folder}: no scenario files (*.yaml) there")
    total = (len(library(folder)) + len(redesign.SPANS)) * len(seeds)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("scenarios x seeds", total=total)
        outcomes = run(folder, seeds, least=least, progress=lambda _: progress.advance(task))
        flags = redesign.run(seeds, progress=lambda _: progress.advance(task))
    per_seed = {seed: summary([o for o in outcomes if o.seed == seed]) for seed in seeds}
    flagged = {
        span: {
            "summary": redesign.summary([r for r in flags if r.span == span]),
            "typical": redesign.typical(span),
            "per_seed": {
                seed: redesign.summary([r for r in flags if (r.span, r.seed) == (span, seed)]) for seed in seeds
            },
        }
        for span in redesign.SPANS
    }
    return {"summary": summary(outcomes), "per_seed": per_seed, "delays": delay_table(outcomes), "redesign": flagged}
