"""Where rules get their values: the store (catalog metrics, burn rates, signals) or given series.

A :class:`SampleSource` answers "the samples of this rule at this time"; the
evaluator, the backtest and the rule unit tests differ only in the source:

* :class:`StoreSource` reads ClickHouse through :func:`pipeline.catalog.query`
  for the window ending at ``now`` (``[now - window, now)``), grouped by the
  rule's ``by``; a burn rate is bad ratio / (1 - objective) over the long and
  the short window, and its value is the smaller burn (both must exceed the
  factor); signals come from the registry of :func:`default_signals`.
* :class:`SeriesSource` (in :mod:`alerts.ruletest`) replays given series.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from alerts.rules import LoadedRule, Rule
from alerts.sample import Sample
from pipeline import catalog

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from pipeline.catalog.metrics import GroupKey

SignalFn = Callable[..., list[Sample]]  # (client, database, now, *, store: bool) -> samples


class SampleSource(Protocol):
    def samples(self, rule: LoadedRule, now: datetime) -> list[Sample]: ...


def default_signals(max_age: timedelta = timedelta(minutes=10)) -> dict[str, SignalFn]:
    """The signal registry. The sources are imported when called, so this package imports without them.

    A live evaluation (``store=True``) reads the health job's newest stored results younger than ``max_age``
    (:mod:`alerts.health`), and computes and stores them only when there are none; the backtest computes.
    """

    def release_regression(client: Client, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        from alerts.health import stored_release_samples
        from alerts.regression import regression_samples

        stored = stored_release_samples(client, database, now, max_age) if store else None
        return stored if stored is not None else list(regression_samples(client, database, now, store=store))

    def redesign_candidate(client: Client, database: str, now: datetime, *, store: bool = False) -> list[Sample]:
        from alerts.health import stored_redesign_samples
        from alerts.scorecard import redesign_samples

        stored = stored_redesign_samples(client, database, now, max_age) if store else None
        return stored if stored is not None else list(redesign_samples(client, database, now, store=store))

    return {"release_regression": release_regression, "redesign_candidate": redesign_candidate}


def burn_sample(rule: Rule, labels: Mapping[str, str], long_ratio: float, short_ratio: float, volume: float) -> Sample:
    """The burn-rate sample of one series: value = min(long burn, short burn)."""
    br = rule.burn_rate
    assert br is not None
    budget = 1.0 - br.objective

    def burn(ratio: float) -> float:
        if ratio is None or math.isnan(ratio):
            return math.nan
        bad = ratio if br.ratio == "bad" else 1.0 - ratio
        return bad / budget

    b_long, b_short = burn(long_ratio), burn(short_ratio)
    value = math.nan if math.isnan(b_long) or math.isnan(b_short) else min(b_long, b_short)
    evidence = {
        "metric": br.metric,
        "objective": br.objective,
        "burn_long": b_long,
        "burn_short": b_short,
        "ratio_long": long_ratio,
        "ratio_short": short_ratio,
        "factor": br.factor,
    }
    return Sample(dict(labels), value, volume, evidence)


def _float_or_nan(v: Any) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


class StoreSource:
    """Samples read from ClickHouse at ``now``; ``store_signals`` lets signal sources persist their results."""

    def __init__(
        self,
        client: Client,
        database: str,
        signals: Mapping[str, SignalFn] | None = None,
        store_signals: bool = False,
    ) -> None:
        self.client = client
        self.database = database
        self.signals = dict(signals) if signals is not None else default_signals()
        self.store_signals = store_signals

    def _query(self, names: list[str], by: tuple[str, ...], now: datetime, window_s: float) -> dict[tuple, list[float]]:
        cols, rows = catalog.query(
            self.client,
            self.database,
            names,
            now - timedelta(seconds=window_s),
            until=now,
            by=cast("tuple[GroupKey, ...]", by),
        )
        n = len(by)
        return {tuple(str(k) for k in r[:n]): [_float_or_nan(v) for v in r[n:]] for r in rows}

    def _with_volume(
        self, rule: Rule, metric: str, now: datetime, window_s: float
    ) -> tuple[dict[tuple, float], dict[tuple, float] | None]:
        """The metric's values and the rule's volumes by series; one query when their windows agree."""
        by = rule.group_by
        mv = rule.min_volume
        if mv is None or mv.metric is None:
            return {k: v[0] for k, v in self._query([metric], by, now, window_s).items()}, None
        if (mv.window or window_s) == window_s:
            got = self._query([metric, mv.metric], by, now, window_s)
            return {k: v[0] for k, v in got.items()}, {k: v[1] for k, v in got.items()}
        values = {k: v[0] for k, v in self._query([metric], by, now, window_s).items()}
        return values, {k: v[0] for k, v in self._query([mv.metric], by, now, mv.window or window_s).items()}

    def _widen(
        self, rule: Rule, metric: str, now: datetime, values: dict[tuple, float], volumes: dict[tuple, float] | None
    ) -> dict[tuple, float]:
        """Series short of the minimum volume read again over 4x the window, up to ``widen_to`` (in place).

        Returns the window each widened series was read over; a series with no traffic at all in the
        rule's window comes in from the wider one.
        """
        mv = rule.min_volume
        if mv is None or mv.widen_to is None or mv.metric is None or volumes is None:
            return {}
        used: dict[tuple, float] = {}
        window = mv.window or rule.window_s
        while window < mv.widen_to:
            window = min(window * 4, mv.widen_to)
            got = self._query([metric, mv.metric], rule.group_by, now, window)
            short = [k for k, v in got.items() if not volumes.get(k, math.nan) >= mv.min]
            if not short:
                break
            for k in short:
                values[k], volumes[k], used[k] = got[k][0], got[k][1], window
        return used

    def samples(self, rule: LoadedRule, now: datetime) -> list[Sample]:
        r = rule.rule
        by = r.group_by
        if r.signal is not None:
            fn = self.signals.get(r.signal)
            if fn is None:
                raise KeyError(f"no source registered for signal {r.signal!r}")
            return list(fn(self.client, self.database, now, store=self.store_signals))
        if r.metric is not None:
            values, volumes = self._with_volume(r, r.metric, now, r.window_s)
            windows = self._widen(r, r.metric, now, values, volumes)
            return [
                Sample(
                    dict(zip(by, k, strict=True)),
                    values[k],
                    math.inf if volumes is None else volumes.get(k, math.nan),
                    {"window_s": windows[k]} if k in windows else {},
                )
                for k in sorted(values)
            ]
        br = r.burn_rate
        assert br is not None
        long, volumes = self._with_volume(r, br.metric, now, br.long)
        short = {k: v[0] for k, v in self._query([br.metric], by, now, br.short).items()}
        return [
            burn_sample(
                r,
                dict(zip(by, k, strict=True)),
                long[k],
                short.get(k, math.nan),
                math.inf if volumes is None else volumes.get(k, math.nan),
            )
            for k in sorted(long)
        ]
