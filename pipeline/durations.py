"""The one duration grammar: ``0``, ``30s``, ``5m``, ``1h30m``, ``3d``, ``2w`` (Prometheus style).

Rule files (``for``, ``window``, ...) and the command line (``--since``,
``--step``) both parse with :func:`parse_duration`, so what one accepts the
other accepts. Parsed to seconds (float); :func:`format_duration` writes them
back the same way.
"""

from __future__ import annotations

import re

_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")
_WHOLE = re.compile(r"(?:\d+[wdhms])+")


def parse_duration(text: object) -> float:
    """Seconds in ``text``; raises ValueError naming the accepted forms."""
    if isinstance(text, bool):
        raise ValueError(f"bad duration {text!r}")
    if isinstance(text, int | float) and text == 0:
        return 0.0
    if not isinstance(text, str) or not (text == "0" or _WHOLE.fullmatch(text)):
        raise ValueError(f"bad duration {text!r}: use e.g. 0, 30s, 5m, 1h30m, 3d, 2w")
    return float(sum(int(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """``5400`` -> ``1h30m``; ``0`` -> ``0s``; fractions of a second are dropped."""
    left = int(seconds)
    if left <= 0:
        return "0s"
    out = []
    for unit, size in _UNITS.items():
        if left >= size:
            out.append(f"{left // size}{unit}")
            left %= size
    return "".join(out)
