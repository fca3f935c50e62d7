"""Measure: what a release-judge evaluation costs, with and without re-making its earlier looks.

Run it from a checkout (no broker needed)::

    PYTHONPATH=$PWD:$PWD/tests python tests/benchmarks/judge_cost.py --days 14 --users 300 --runs 6

A severe verdict stands once an hourly look reached it
(:func:`alerts.regression.first_severe_look`): each evaluation re-makes the
earlier looks of every release that is not severe now, from the hourly counts
it already read. This fills an embedded store with ``regression_and_decay``
(``tests/support/scenario_store.py``), then times ``release_verdicts``
``--after`` hours (30) after the bad release, alternating the shipped judge
with one that skips the earlier looks and one whose verdicts stop moving at
72 h (the bake before a week; so the machine's noise hits all alike), and
prints the median of each and their ratios. A measurement, not a test: nothing
here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from support.scenario_store import close_scenario, open_scenario

import alerts.regression as judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=14, help="days of traffic in the store (default 14)")
    parser.add_argument("--users", type=int, default=300, help="users per product (default 300)")
    parser.add_argument("--runs", type=int, default=6, help="timed evaluations of each kind (default 6)")
    parser.add_argument("--after", type=float, default=30, help="hours after the bad release (default 30)")
    args = parser.parse_args()
    sc = open_scenario(Path(tempfile.mkdtemp()) / "store", days=args.days, users_per_product=args.users)
    try:
        now = datetime.fromisoformat(sc.story["regression_released_at"]) + timedelta(hours=args.after)
        shipped = judge.first_severe_look
        three_days = judge.RegressionConfig(max_bake_s=72 * 3600)
        times: dict[str, list[float]] = {"shipped": [], "latest look only": [], "72 h bake": []}
        verdicts = 0
        for _ in range(args.runs):
            for name in times:
                judge.first_severe_look = shipped if name != "latest look only" else (lambda *_: None)  # type: ignore[assignment]
                cfg = three_days if name == "72 h bake" else None
                t = time.perf_counter()
                verdicts = len(judge.release_verdicts(sc.client, sc.database, now, config=cfg))
                times[name].append(time.perf_counter() - t)
        judge.first_severe_look = shipped
        med = {name: statistics.median(ts) * 1000 for name, ts in times.items()}
        releases = verdicts // len(judge.SIGNALS)
        for name, ms in med.items():
            print(f"{name:>26}: {ms:7.1f} ms per evaluation (median of {args.runs}; {releases} releases judged)")
        for other in ("latest look only", "72 h bake"):
            print(f"{'ratio to ' + other:>26}: {med['shipped'] / med[other]:.2f}")
    finally:
        close_scenario(sc)


if __name__ == "__main__":
    main()
