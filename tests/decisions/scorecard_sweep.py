"""The redesign flag over many seeds and data spans: how often the decays are flagged, and healthy products not.

The suite (``test_scorecard_decisions.py``) asserts five seeds on 75 days of
data. This sweep runs the same simulated products (:mod:`alerts.harness.daily`)
over more seeds and shorter spans - a store that has only 28 days, with the
decline starting on its first day, is the held-out scenario's shape - and
prints, per span, the decays missed at the last evaluation and the healthy
products flagged at any of three evaluations (13 and 6 days before the end,
and at the end)::

    PYTHONPATH=$PWD:$PWD/tests .venv/bin/python tests/decisions/scorecard_sweep.py --seeds 100 --spans 28,35,42,75

Next to the seeds' counts it prints the *typical draw*: the slow decay with
every count at its mean (``simulate(..., expected=True)``), whether it is
flagged, and how far its two lowest dimensions' upper ends are under their
floors (negative: over). A decay flagged on its typical draw is within the
scorecard's reach at that volume; the seeds that miss it miss on their luck,
and a small margin says how many will.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time, timedelta

from alerts.harness import daily as sim
from alerts.harness import redesign
from alerts.scorecard import score_product
from alerts.scorecard_config import load_config

END = redesign.END
HEALTHY = {name: case.scenario for name, case in redesign.CASES.items() if case.truth == "healthy"}
STRONG_DECAY_MIN_SPAN = redesign.CASES["strong-decay-70-30"].min_span


def _flagged(product: str, data: dict[date, dict[str, float]], days_back: int) -> bool:
    now = datetime.combine(END - timedelta(days=days_back), time(6), UTC)
    return score_product(product, data, now, config=load_config()).redesign_candidate


def typical(span: int) -> str:
    """The slow decay on its typical draw at ``span`` days: flagged or missed, and its dimensions' margins."""
    t = redesign.typical(span)
    return f"{'flagged' if t['flagged'] else 'missed'} ({', '.join(f'{m:+.1f}' for m in t['margins'])})"


def sweep(span: int, seeds: range) -> dict[str, list[int]]:
    """Per case, the seeds it was judged wrong on."""
    decays = {"slow-decay-100": sim.slow_decay(100, over_days=min(28, span))}
    if span >= STRONG_DECAY_MIN_SPAN:
        decays["strong-decay-70-30"] = sim.strong_decay()
    wrong: dict[str, list[int]] = {name: [] for name in (*decays, *HEALTHY)}
    for seed in seeds:
        for name, scenario in decays.items():
            if not _flagged(name, sim.simulate(scenario, END, span, sim.product_seed(name, seed)), 0):
                wrong[name].append(seed)
        for name, scenario in HEALTHY.items():
            data = sim.simulate(scenario, END, span, sim.product_seed(name, seed))
            if any(_flagged(name, data, back) for back in (13, 6, 0)):
                wrong[name].append(seed)
        print(f"\rspan {span} d: seed {seed + 1 - seeds.start}/{len(seeds)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return wrong


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="seeds per span (default 20)")
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--spans", default="28,42,75", help="days of data before the end, comma-separated")
    args = ap.parse_args(argv)
    spans = [int(s) for s in args.spans.split(",")]
    if args.seeds < 1 or any(s < 8 for s in spans):
        ap.error("--seeds must be at least 1 and every span at least 8 days (one window and a reference)")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"{'span':>5}  {'slow decay missed':>17}  {'its typical draw':>22}  {'strong decay missed':>19}  "
          f"healthy flagged (of {len(HEALTHY)} products x {args.seeds} seeds)")  # fmt: skip
    for span in spans:
        wrong = sweep(span, seeds)
        strong = f"{len(wrong['strong-decay-70-30'])}" if "strong-decay-70-30" in wrong else "-"
        healthy = sum(len(wrong[n]) for n in HEALTHY)
        named = ", ".join(f"{n} {wrong[n]}" for n in HEALTHY if wrong[n])
        print(f"{span:>4}d  {len(wrong['slow-decay-100']):>17}  {typical(span):>22}  {strong:>19}  "
              f"{healthy}{': ' + named if named else ''}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
