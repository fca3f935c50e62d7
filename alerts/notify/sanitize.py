"""Notification text without control or bidi characters: a receiver shows what the text says, nothing else.

Labels and annotations carry strings that came from events (a product, a version) and
from templates. A NUL, an escape sequence, a newline or a bidi override in them would
reach a pager, a chat message or an e-mail raw (issue 17, finding 5): forge a line,
reorder what is shown ("pay\\u202elapyap" displays as "paypaypal"), or be cut at the NUL.

:func:`clean_text` drops every character that is not printable text - Unicode's
control (Cc: NUL, ESC, DEL, C1), format (Cf: bidi embeddings, overrides and isolates,
marks, zero-width characters, BOM), line and paragraph separators (Zl, Zp), surrogates,
private-use and unassigned code points - and turns other spaces (Zs) into ``" "``.
Labels are single-line (:func:`clean_labels`); an annotation may keep its line breaks
(:func:`clean_annotations`: ``\\n`` only, ``\\r`` dropped). Text is not HTML-escaped:
notifications are JSON, and a receiver that renders HTML escapes (Alertmanager's
templates do). Anything building a notification body calls these on the way out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

_DROPPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def clean_text(text: str) -> str:
    """``text`` without control, format (bidi, zero-width) or separator characters; other spaces as ``" "``."""
    if text.isprintable():  # the common case, in C: nothing to drop (isprintable is False for all of the above)
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if category == "Zs":
            out.append(" ")
        elif category not in _DROPPED:
            out.append(ch)
    return "".join(out)


def clean_multiline(text: str) -> str:
    """:func:`clean_text` of each line, the lines kept (``\\n``)."""
    return "\n".join(clean_text(line) for line in text.split("\n"))


def clean_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels (names and values) as single-line printable text."""
    return {clean_text(k): clean_text(v) for k, v in labels.items()}


def clean_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """Annotations as printable text; values keep their line breaks."""
    return {clean_text(k): clean_multiline(v) for k, v in annotations.items()}
