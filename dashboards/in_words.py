"""A scorecard row's evidence as sentences, in ClickHouse SQL (for Grafana's table and the built-in view).

A product manager reads "Customer experience scores 41/100 (95% CI 35 to 47)
against a floor of 55, ...: crash-free sessions fell from 98.50% to 94.00%",
not a dictionary. Those sentences are written once, by
``alerts/evidence.py``, when the scorecard is stored: the composite row's
evidence carries the card's ``sentences`` and each dimension row its own. The
table prints what is stored, so Grafana, the built-in view, the CLI and
notifications say the same thing from one renderer.

A row stored without sentences (by a version from before they were written;
the health job writes fresh rows every few minutes) shows its score against
its floor, from the row's own columns, and no more.

It is one expression over the row, so the SQL runs unchanged in Grafana's
plugin and in the built-in view, and no value is spliced.
"""

from __future__ import annotations


def evidence_in_words() -> str:
    """The row's stored sentences, joined; for a row stored without them, its score against its floor."""
    return (
        "if(JSONHas(evidence, 'sentences'), "
        "arrayStringConcat(JSONExtract(evidence, 'sentences', 'Array(String)'), ' '), "
        "concat(dimension, ' scores ', toString(round(score, 1)), ' against a floor of ', toString(floor), "
        "' (stored without its evidence in words).'))"
    )
