"""A tiny, safe template language for alert annotations, in two dialects that mix freely.

Ours: ``{{ name }}`` inserts a variable; ``{{ name | filter }}`` or ``{{ name | filter(2) }}``
formats it, filters chain left to right.

Prometheus' (the subset of Go's text/template that rule files use, so an
on-call person's habits work): ``{{ $labels.product }}``, ``{{ $value }}``,
``{{ $value | humanize }}``, ``{{ humanizePercentage $value }}``,
``{{ printf "%.2f" $value }}``, ``{{ $evidence.sentences | join "; " }}``. A piped
value is the last argument of the function, as in Go. ``{{- x -}}`` trims the
whitespace beside it.

Nothing else: no expressions, no method calls, no ``range``/``if``, no code - a
rule file cannot make the evaluator do anything but look up and format.
:func:`compile_template` checks every variable, label, evidence field,
function and argument count when rules load, so a typo fails ``pulse alerts
check`` instead of a page.

Functions (a numeric function given text that is not a number leaves it unchanged):

* ``number(d=3)`` - ``d`` significant digits with k/M/G suffixes: 1234 -> ``1.23k``;
* ``percent(d=1)`` - a ratio as a percentage: 0.0123 -> ``1.2%``;
* ``duration`` - seconds as ``1h30m`` (``42s`` under a minute);
* ``round(d=0)`` - fixed ``d`` decimals;
* ``humanize``, ``humanize1024``, ``humanizeDuration``, ``humanizePercentage`` - Prometheus'
  own, with its output (``1.235M``, ``1d 2h 3m 4s``, ``12.34%``; checked against promtool);
* ``printf "<format>"`` - one Go verb per argument (``%d %f %g %e %s %v %x %q %%``, flags, width, precision);
* ``join "<sep>"`` - a list's items, ``"; "`` by default; ``toUpper``, ``toLower``, ``title``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.durations import format_duration

_EXPR = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OLD_FILTER = re.compile(r"([A-Za-z_]+)\((\d{1,2})\)")
_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|`[^`]*`|\||[^\s|"`]+)')
_PATH = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_VERB = re.compile(r"%([-+ 0#]*)(\d{0,3})(?:\.(\d{1,2}))?([dfFgGeEsvxXq%])")


class TemplateError(ValueError):
    """A template that does not parse or names an unknown variable, label, field or function."""


def _as_float(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _digits(args: Sequence[object], default: int) -> int:
    return int(args[0]) if args and isinstance(args[0], int | float) else default  # type: ignore[arg-type]


def _number(args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    if math.isnan(x) or math.isinf(x):
        return str(x)
    d = max(1, _digits(args, 3))
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.{d}g}{suffix}"
    return f"{x:.{d}g}"


def _percent(args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    return f"{x * 100:.{_digits(args, 1)}f}%"


def _duration(_args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None or math.isnan(x):
        return str(v)
    return f"{int(x)}s" if x < 60 else format_duration(x)


def _round(args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    return f"{x:.{_digits(args, 0)}f}"


# --- Prometheus' functions, ported from prometheus/template/template.go -----------------------------------


def _go_g(x: float) -> str:
    """Go's ``%.4g``: Python's, except Go spells infinities +Inf/-Inf and NaN as NaN."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return f"{x:.4g}"


_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")


def _scaled(v: float, base: float, prefixes: Sequence[str]) -> str:
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix, v = p, v / base
    return f"{_go_g(v)}{prefix}"


def _humanize(_args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    if x == 0 or math.isnan(x) or math.isinf(x):
        return _go_g(x)
    if abs(x) >= 1:
        return _scaled(x, 1000, ("k", "M", "G", "T", "P", "E", "Z", "Y"))
    prefix = ""
    for p in _SMALL:
        if abs(x) >= 1:
            break
        prefix, x = p, x * 1000
    return f"{_go_g(x)}{prefix}"


def _humanize1024(_args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    if abs(x) <= 1 or math.isnan(x) or math.isinf(x):
        return _go_g(x)
    return _scaled(x, 1024, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"))


def _humanize_duration(_args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    if math.isnan(x) or math.isinf(x):
        return _go_g(x)
    if x == 0:
        return f"{_go_g(x)}s"
    if abs(x) >= 1:
        sign = "-" if x < 0 else ""
        total = int(abs(x))
        seconds, minutes, hours, days = total % 60, total // 60 % 60, total // 3600 % 24, total // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_go_g(abs(x))}s"
    prefix = ""
    for p in _SMALL:
        if abs(x) >= 1:
            break
        prefix, x = p, x * 1000
    return f"{_go_g(x)}{prefix}s"


def _humanize_percentage(_args: Sequence[object], v: object) -> str:
    x = _as_float(v)
    if x is None:
        return str(v)
    return f"{_go_g(x * 100)}%"


def _printf(args: Sequence[object], v: object = None) -> str:
    fmt, values = str(args[0]), [*args[1:], *([] if v is None else [v])]
    out, pos, i = [], 0, 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, precision, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        value = values[i] if i < len(values) else ""
        i += 1
        spec = flags.replace("#", "") + width + (f".{precision}" if precision else "")
        x = _as_float(value)
        if verb in "dxX" and x is not None and math.isfinite(x):
            out.append(format(int(x), spec + ("d" if verb == "d" else verb.lower() if verb == "x" else "X")))
        elif verb in "fFgGeE" and x is not None:
            out.append(format(x, spec + verb) if math.isfinite(x) else _go_g(x))
        elif verb == "q":
            out.append(json.dumps(_plain(value), ensure_ascii=False))
        else:
            out.append(format(_plain(value), flags.replace("0", "").replace("#", "") + width))
    out.append(fmt[pos:])
    return "".join(out)


def _join(args: Sequence[object], v: object) -> str:
    sep = str(args[0]) if args else "; "
    if isinstance(v, list | tuple):
        return sep.join(_plain(x) for x in v)
    return _plain(v)


@dataclass(frozen=True)
class Function:
    fn: Callable[..., str]
    min_args: int = 0  # literal arguments besides the piped value
    max_args: int = 0
    literal: type = int  # the type of the literal arguments (int for our old filters' digits)


FUNCTIONS: dict[str, Function] = {
    "number": Function(_number, 0, 1),
    "percent": Function(_percent, 0, 1),
    "duration": Function(_duration),
    "round": Function(_round, 0, 1),
    "humanize": Function(_humanize),
    "humanize1024": Function(_humanize1024),
    "humanizeDuration": Function(_humanize_duration),
    "humanizePercentage": Function(_humanize_percentage),
    "printf": Function(_printf, 1, 1, str),
    "join": Function(_join, 0, 1, str),
    "toUpper": Function(lambda _a, v: _plain(v).upper()),
    "toLower": Function(lambda _a, v: _plain(v).lower()),
    "title": Function(lambda _a, v: _plain(v).title()),
}
FILTERS = FUNCTIONS  # the old name


def _plain(v: object) -> str:
    if isinstance(v, float):
        return _number((6,), v)
    if isinstance(v, list | tuple):
        return _join((), v)
    if isinstance(v, Mapping):
        return json.dumps(v, sort_keys=True, default=str)
    if v is None:
        return ""
    return str(v)


# A value reference: ("product",) for ours, ("$labels", "product"), ("$value",), ("$evidence", "a", "b").
Path = tuple[str, ...]


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[object, ...]  # literals (str, int, float); the first call's last may be a Ref


@dataclass(frozen=True)
class Ref:
    path: Path


@dataclass(frozen=True)
class Pipeline:
    head: Ref | None  # the value that flows in; None when the first command is a call (printf "%d" $x)
    calls: tuple[Call, ...]


@dataclass(frozen=True)
class Scope:
    """What a template may name: our flat variables, ``$labels`` and ``$evidence`` fields (None: not checked)."""

    variables: frozenset[str]
    labels: frozenset[str] = frozenset()
    evidence: frozenset[str] | None = frozenset()
    dollar: frozenset[str] = frozenset({"labels", "value", "evidence"})


def _lookup(values: Mapping[str, object], path: Path) -> object:
    node: object = values.get(path[0], "")
    for key in path[1:]:
        node = node.get(key, "") if isinstance(node, Mapping) else ""
    return node


def _value(arg: object, values: Mapping[str, object]) -> object:
    return _lookup(values, arg.path) if isinstance(arg, Ref) else arg


@dataclass(frozen=True)
class Template:
    """A checked template: literal text and pipelines, rendered with :meth:`render`."""

    parts: tuple[str | Pipeline, ...]

    def render(self, values: Mapping[str, object]) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value: object = None if part.head is None else _lookup(values, part.head.path)
            if not part.calls:
                out.append(_plain(value))
                continue
            for i, call in enumerate(part.calls):
                args = [_value(a, values) for a in call.args]
                if i == 0 and part.head is None:  # printf "%d" $x: the last argument is the value
                    value = FUNCTIONS[call.name].fn(args[:-1], args[-1])
                else:
                    value = FUNCTIONS[call.name].fn(args, value)
            out.append(str(value))
        return "".join(out)


def _tokens(text: str, expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise TemplateError(f"cannot read {text[pos:].strip()!r} in {expr!r}")
            break
        out.append(m.group(1))
        pos = m.end()
    return out


def _ref(token: str, scope: Scope, expr: str) -> Ref | None:
    """The value ``token`` names, checked against ``scope``; None when it is not a reference."""
    # Go's dot forms, as Prometheus documents them beside the $ forms.
    if token == ".Value":
        token = "$value"
    elif token.startswith(".Labels."):
        token = "$labels." + token.removeprefix(".Labels.")
    if token.startswith("$"):
        m = _PATH.fullmatch(token)
        if m is None:
            raise TemplateError(
                f"bad reference {token!r} in {expr!r}: expected $labels.<name>, $value or $evidence.<field>"
            )
        root, rest = m.group(1), [p for p in m.group(2).split(".") if p]
        if root not in scope.dollar:
            raise TemplateError(f"unknown variable ${root} in {expr!r}; known: $labels, $value, $evidence")
        if root == "value" and rest:
            raise TemplateError(f"$value is a number, it has no fields: {expr!r}")
        if root == "labels":
            if len(rest) != 1:
                raise TemplateError(f"name one label: $labels.<name> in {expr!r}")
            if rest[0] not in scope.labels:
                raise TemplateError(
                    f"unknown label {rest[0]!r} in {expr!r}; this rule's labels: {', '.join(sorted(scope.labels))}"
                )
        if root == "evidence":
            if not rest:
                raise TemplateError(f"name an evidence field: $evidence.<field> in {expr!r}")
            if scope.evidence is not None and rest[0] not in scope.evidence:
                known = ", ".join(sorted(scope.evidence)) or "none (only signal and burn_rate rules carry evidence)"
                raise TemplateError(f"unknown evidence field {rest[0]!r} in {expr!r}; this rule's evidence: {known}")
        return Ref((f"${root}", *rest))
    if _NAME.fullmatch(token) and token in scope.variables:
        return Ref((token,))
    return None


def _literal(token: str) -> object | None:
    if token.startswith('"'):
        try:
            return str(json.loads(token))
        except ValueError:
            return None
    if token.startswith("`"):
        return token[1:-1]
    if _NUMBER.fullmatch(token):
        return float(token) if "." in token else int(token)
    return None


def _call(tokens: list[str], scope: Scope, expr: str, piped: bool) -> Call:
    name, rest = tokens[0], tokens[1:]
    m = _OLD_FILTER.fullmatch(name)
    if m is not None and not rest:
        name, rest = m.group(1), [m.group(2)]
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise TemplateError(f"unknown function {name!r} in {expr!r}; known: {', '.join(sorted(FUNCTIONS))}")
    if not fn.min_args <= len(rest) - (0 if piped else 1) <= fn.max_args:
        raise TemplateError(f"{name} takes {fn.min_args}-{fn.max_args} argument(s) besides the value, in {expr!r}")
    args: list[object] = []
    for i, token in enumerate(rest):
        ref = _ref(token, scope, expr)
        if ref is not None:
            if piped or i != len(rest) - 1:
                raise TemplateError(f"{name}: only the last argument may be a value, in {expr!r}")
            args.append(ref)
            continue
        lit = _literal(token)
        if lit is None:
            raise TemplateError(f"{name}: bad argument {token!r} in {expr!r}")
        if not isinstance(lit, fn.literal) or (fn.literal is int and isinstance(lit, bool)):
            want = "a quoted string" if fn.literal is str else "a whole number"
            raise TemplateError(f"{name}: argument {token!r} must be {want}, in {expr!r}")
        args.append(lit)
    if not piped and (not args or not isinstance(args[-1], Ref)):
        raise TemplateError(f"{name} needs a value: {name} ... $value or $value | {name}, in {expr!r}")
    if name == "printf":
        verbs = [v for v in _VERB.findall(str(args[0])) if v[3] != "%"]
        if len(verbs) != 1 or "%" in _VERB.sub("", str(args[0])):
            raise TemplateError(f"printf: the format needs exactly one verb such as %.2f or %s, in {expr!r}")
    return Call(name, tuple(args))


def _pipeline(body: str, scope: Scope, expr: str) -> Pipeline:
    tokens = _tokens(body, expr)
    commands: list[list[str]] = [[]]
    for t in tokens:
        if t == "|":
            commands.append([])
        else:
            commands[-1].append(t)
    if any(not c for c in commands):
        raise TemplateError(f"bad substitution {expr!r}: expected {{{{ name }}}} or {{{{ name | filter }}}}")
    first = commands[0]
    head: Ref | None = None
    calls: list[Call] = []
    if len(first) == 1:
        head = _ref(first[0], scope, expr)
        if head is None:
            if first[0] in FUNCTIONS:
                raise TemplateError(f"{first[0]} needs a value: $value | {first[0]}, in {expr!r}")
            if not _NAME.fullmatch(first[0]):
                raise TemplateError(f"bad substitution {expr!r}: expected {{{{ name }}}} or {{{{ name | filter }}}}")
            raise TemplateError(
                f"unknown variable {first[0]!r} in {expr!r}; known: {', '.join(sorted(scope.variables))} "
                "(and $labels, $value)"
            )
    else:
        calls.append(_call(first, scope, expr, piped=False))
    calls += [_call(c, scope, expr, piped=True) for c in commands[1:]]
    return Pipeline(head, tuple(calls))


def compile_template(
    text: str,
    variables: Iterable[str] | Scope,
    *,
    labels: Iterable[str] = (),
    evidence: Iterable[str] | None = (),
) -> Template:
    """Parse ``text``; raises :class:`TemplateError` for bad syntax or anything it names that is unknown.

    ``variables`` are our flat names; ``labels`` what ``$labels.<name>`` may name; ``evidence`` the fields
    ``$evidence.<field>`` may name (None: any, unchecked).
    """
    scope = (
        variables
        if isinstance(variables, Scope)
        else Scope(frozenset(variables), frozenset(labels), None if evidence is None else frozenset(evidence))
    )
    parts: list[str | Pipeline] = []
    pos = 0
    trim_next = False
    for m in _EXPR.finditer(text):
        literal = text[pos : m.start()]
        if trim_next:
            literal = literal.lstrip()
        if m.group(1):
            literal = literal.rstrip()
        if "{{" in literal or "}}" in literal:
            raise TemplateError(f"unbalanced braces in {text!r}")
        parts.append(literal)
        pos = m.end()
        trim_next = bool(m.group(3))
        parts.append(_pipeline(m.group(2), scope, m.group(0)))
    rest = text[pos:]
    if trim_next:
        rest = rest.lstrip()
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"unbalanced braces in {text!r}")
    parts.append(rest)
    return Template(tuple(p for p in parts if p != ""))


def template_values(
    flat: Mapping[str, object], labels: Mapping[str, str], value: float, evidence: Mapping[str, Any]
) -> dict[str, object]:
    """The values a template renders from: our flat names plus ``$labels``, ``$value`` and ``$evidence``."""
    return {**flat, "$labels": dict(labels), "$value": value, "$evidence": dict(evidence)}
