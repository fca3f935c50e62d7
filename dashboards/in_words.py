"""A scorecard row's stored evidence JSON as sentences, in ClickHouse SQL (for Grafana's table and the built-in view).

A product manager reads "customer experience scores 41.2 against its floor of
70, below it on 9 days of the period, falling 2.1 points a day. crash free
sessions is 97.12% against 99.31% in the reference week.", not a dictionary.

The scorecard's own renderer writes a ``sentences`` array into the composite
row's evidence (``alerts/evidence.py``); where a row carries it, the table
shows those sentences, so Grafana, the CLI and notifications say the same
thing. Rows without it (dimension rows, and scorecards stored before the
renderer) are put into words here from the fields every scorecard stores:
``score``, ``floor``, ``days_below``, ``trend`` (columns) and the evidence's
``signals`` (value against baseline or SLO, in stored order) and the
candidate's ``reasons``. Numbers take their catalog unit (ratios as %, ms, h).

It is all one expression over the row, so the SQL runs unchanged in Grafana's
plugin and in the built-in view, and no value is spliced: everything is read
from the row itself.
"""

from __future__ import annotations

from dashboards.thresholds import policy
from pipeline.catalog.metrics import CATALOG


def _names(unit: str) -> str:
    return ", ".join(f"'{name}'" for name, m in sorted(CATALOG.items()) if m.unit == unit) or "''"


_WORDS = {"dau": "daily active users", "wau": "weekly active users", "mau": "monthly active users", "nps": "NPS",
          "csat": "CSAT"}  # fmt: skip


def readable(name: str) -> str:
    """A catalog metric's name in words: ``latency_p95_ms`` is "p95 latency", ``nps`` "NPS"."""
    if name in _WORDS:
        return _WORDS[name]
    words = name.removesuffix("_ms").removesuffix("_h").split("_")
    if words[0] == "latency" and len(words) == 2:
        words.reverse()
    return " ".join(words)


def _label(signal: str) -> str:
    names = [n for n in sorted(CATALOG) if readable(n) != n.replace("_", " ")]  # the rest: underscores as spaces
    return (
        f"transform({signal}, [{', '.join(repr(n) for n in names)}], "
        f"[{', '.join(repr(readable(n)) for n in names)}], replaceAll({signal}, '_', ' '))"
    )


def _number(signal: str, value: str) -> str:
    """``value`` (a Float64 expression) formatted in the unit of catalog metric ``signal`` (a String expression)."""
    return (
        f"multiIf({signal} IN ({_names('ratio')}), concat(toString(round({value} * 100, 2)), '%'), "
        f"{signal} IN ({_names('ms')}), concat(toString(round({value})), ' ms'), "
        f"{signal} IN ({_names('hours')}), concat(toString(round({value}, 1)), ' h'), "
        f"toString(round({value}, 2)))"
    )


def _signals() -> str:
    """One sentence per signal scoring under 100: what it is now against its reference week."""
    raw = "JSONExtractString(x, 'signal')"
    sig = _label(raw)
    value, base = "JSONExtract(x, 'value', 'Nullable(Float64)')", "JSONExtract(x, 'baseline', 'Nullable(Float64)')"
    # An SLO signal's baseline is its SLO, not a reference week (the stored "kind" says so once the scorecard
    # writes it; before, the scorecard policy's slo signals do).
    slo = ", ".join(f"'{m}'" for m in policy().slo_signals)
    is_slo = f"(JSONExtractString(x, 'kind') = 'slo' OR {raw} IN ({slo}))"
    sentence = (
        f"concat(' ', {sig}, ' is ', {_number(raw, f'assumeNotNull({value})')}, "
        f"if({is_slo}, ' against its SLO of ', ' against '), {_number(raw, f'assumeNotNull({base})')}, "
        f"if({is_slo}, '.', ' in the reference week.'))"
    )
    keep = f"JSONExtract(x, 'score', 'Nullable(Float64)') < 100 AND {value} IS NOT NULL AND {base} IS NOT NULL"
    return f"arrayStringConcat(arrayMap(x -> {sentence}, arrayFilter(x -> {keep}, JSONExtractArrayRaw(evidence, 'signals'))), '')"  # noqa: E501


def _dimension() -> str:
    trend = (
        "if(isNaN(trend) OR round(trend, 1) = 0, '', concat(if(trend < 0, ', falling ', ', rising '), "
        "toString(round(abs(trend), 1)), ' points a day'))"
    )
    return (
        "concat(dimension, ' scores ', toString(round(score, 1)), ' against its floor of ', toString(floor), "
        "', below it on ', toString(days_below), if(days_below = 1, ' day', ' days'), ' of the period', "
        f"{trend}, '.', {_signals()})"
    )


def _composite() -> str:
    reasons = (
        "arrayStringConcat(arrayFlatten(arrayMap(x -> JSONExtract(x, 'reasons', 'Array(String)'), "
        "arrayFilter(x -> JSONExtractString(x, 'kind') = 'redesign_candidate', "
        "JSONExtractArrayRaw(evidence, 'evidence')))), '; ')"
    )
    return (
        f"concat(product, if(redesign_candidate = 1, concat(' is a redesign candidate: ', {reasons}, '. '), ': '), "
        "'composite score ', toString(round(score, 1)), ' against a floor of ', toString(floor), '.')"
    )


def evidence_in_words() -> str:
    """The row's sentences: the stored ``sentences`` when present, else the fallback from its fields."""
    return (
        "if(JSONHas(evidence, 'sentences'), "
        "arrayStringConcat(JSONExtract(evidence, 'sentences', 'Array(String)'), ' '), "
        f"if(dimension = 'composite', {_composite()}, {_dimension()}))"
    )
