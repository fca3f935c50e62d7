"""``pulse eval``: the release judge over a scenario library, with a progress bar, as figures and a table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_SCENARIOS = Path(__file__).resolve().parents[2] / "tests" / "decisions" / "scenarios"


def evaluate(folder: Path, seeds: Sequence[int], *, least: bool = False) -> dict[str, Any]:
    """The confusion figures and the delay table of :mod:`alerts.harness` over ``folder`` for ``seeds``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from alerts.harness.run import delay_table, run, summary
    from alerts.harness.scenario import library

    if not folder.is_dir() or not any(folder.glob("*.yaml")):
        raise FileNotFoundError(f"{folder}: no scenario files (*.yaml) there")
    total = len(library(folder)) * len(seeds)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("scenarios x seeds", total=total)
        outcomes = run(folder, seeds, least=least, progress=lambda _: progress.advance(task))
    per_seed = {seed: summary([o for o in outcomes if o.seed == seed]) for seed in seeds}
    return {"summary": summary(outcomes), "per_seed": per_seed, "delays": delay_table(outcomes)}
