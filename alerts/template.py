"""A tiny, safe template language for alert annotations.

``{{ name }}`` inserts a variable; ``{{ name | filter }}`` or ``{{ name | filter(2) }}``
formats it, filters chain left to right. Nothing else: no expressions, no
attribute access, no code - a rule file cannot make the evaluator do anything
but substitute and format. :func:`compile_template` checks every variable and
filter when rules load, so a typo fails ``pulse alerts check`` instead of a page.

Filters (the optional argument is an integer):

* ``number(d=3)`` - ``d`` significant digits with k/M/G suffixes: 1234 -> ``1.23k``;
* ``percent(d=1)`` - a ratio as a percentage: 0.0123 -> ``1.2%``;
* ``duration`` - seconds as ``1h30m`` (``42s`` under a minute);
* ``round(d=0)`` - fixed ``d`` decimals.

A numeric filter given text that is not a number leaves it unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from alerts.durations import format_duration

_EXPR = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FILTER = re.compile(r"([A-Za-z_]+)(?:\((\d{1,2})\))?")


class TemplateError(ValueError):
    """A template that does not parse or names an unknown variable or filter."""


def _as_float(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _number(v: object, digits: int | None) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    d = max(1, digits if digits is not None else 3)
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.{d}g}{suffix}"
    return f"{x:.{d}g}"


def _percent(v: object, digits: int | None) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    return f"{x * 100:.{digits if digits is not None else 1}f}%"


def _duration(v: object, _digits: int | None) -> str:
    x = _as_float(v)
    if x is None or math.isnan(x):
        return str(v)
    return f"{int(x)}s" if x < 60 else format_duration(x)


def _round(v: object, digits: int | None) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    return f"{x:.{digits or 0}f}"


FILTERS: dict[str, Callable[[object, int | None], str]] = {
    "number": _number,
    "percent": _percent,
    "duration": _duration,
    "round": _round,
}


def _plain(v: object) -> str:
    if isinstance(v, float):
        return _number(v, 6)
    return str(v)


@dataclass(frozen=True)
class Template:
    """A checked template: literal text and substitutions, rendered with :meth:`render`."""

    parts: tuple[str | tuple[str, tuple[tuple[str, int | None], ...]], ...]

    def render(self, values: Mapping[str, object]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, filters = part
            value: object = values.get(name, "")
            if not filters:
                out.append(_plain(value))
                continue
            for fname, arg in filters:
                value = FILTERS[fname](value, arg)
            out.append(str(value))
        return "".join(out)


def compile_template(text: str, variables: Iterable[str]) -> Template:
    """Parse ``text``; raises :class:`TemplateError` for bad syntax, unknown variables or filters."""
    known = set(variables)
    parts: list[str | tuple[str, tuple[tuple[str, int | None], ...]]] = []
    pos = 0
    for m in _EXPR.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        pieces = [p.strip() for p in m.group(1).split("|")]
        name = pieces[0]
        if not _NAME.fullmatch(name):
            raise TemplateError(f"bad substitution {m.group(0)!r}: expected {{{{ name }}}} or {{{{ name | filter }}}}")
        if name not in known:
            raise TemplateError(f"unknown variable {name!r} in {m.group(0)!r}; known: {', '.join(sorted(known))}")
        filters: list[tuple[str, int | None]] = []
        for piece in pieces[1:]:
            fm = _FILTER.fullmatch(piece)
            if fm is None or fm.group(1) not in FILTERS:
                raise TemplateError(f"unknown filter {piece!r} in {m.group(0)!r}; known: {', '.join(sorted(FILTERS))}")
            filters.append((fm.group(1), int(fm.group(2)) if fm.group(2) else None))
        parts.append((name, tuple(filters)))
    rest = text[pos:]
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"unbalanced braces in {text!r}")
    for literal in parts:
        if isinstance(literal, str) and ("{{" in literal or "}}" in literal):
            raise TemplateError(f"unbalanced braces in {text!r}")
    parts.append(rest)
    return Template(tuple(p for p in parts if p != ""))
