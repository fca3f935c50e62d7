"""Grafana ClickHouse plugin (v4) query expansion, reproduced: macros and template variables.

The plugin expands a panel's ``rawSql`` in two places, in this order:

1. the frontend (``CHDatasource.applyTemplateVariables``): ``$__conditionalAll(cond, $var)``
   becomes ``1=1`` when ``var`` is All (``$__all``) or empty, else ``cond``; then Grafana's
   template service replaces ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]``
   (no format: a single value as is, several as ``'a','b'``);
2. the backend (``pkg/macros/macros.go`` through ``sqlutil.Interpolate``): ``$__timeFilter(c)``
   -> ``c >= toDateTime(from) AND c <= toDateTime(to)``, ``$__fromTime``, ``$__toTime``,
   ``$__interval_s``, ``$__timeInterval(c)`` and the rest of the plugin's map, with the
   SDK's argument parser - including its quirk that an argument-less macro scans on to
   the next parenthesis (so ``$__fromTime AND f(x)`` is one "call" of ``$__fromTime``).

:func:`expand_macros` is that pipeline, for tests that run every panel's SQL on a
real engine. :func:`bind` is the built-in view's variant: the same macros, but
template variables become ClickHouse query parameters instead of quoted text, so
a product name is never spliced into SQL. :func:`check` finds argument-less
macros that the plugin's parser would misread.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from dashboards.errors import DashboardError

VarValue = str | Sequence[str]
ALL = "$__all"

# Grafana's template variable syntax (public/app/features/templating/template_srv: variableRegex).
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
_CONDITIONAL_VAR = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")
_CONDITIONAL = "$__conditionalAll("
_QUOTED_PERCENT = re.compile(r"'\$\{(\w+):percentencode\}'")


def _macro_args(query: str, index: int) -> list[str]:
    """The frontend's getMacroArgs: arguments of the call whose '(' is at ``index`` (split at depth 1)."""
    args: list[str] = []
    depth = 0
    last = 1
    sub = query[index:]
    for m in re.finditer(r"[(),]", sub):
        ch = m.group()
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 1:
            args.append(sub[last : m.end() - 1])
            last = m.end()
        if depth == 0:
            args.append(sub[last : m.end() - 1])
            return args
    return []


def _is_all(value: VarValue | None) -> bool:
    if value is None:
        return False  # an unknown variable: the frontend keeps the condition
    text = value if isinstance(value, str) else ",".join(value)  # JS Array.toString()
    return text in ("", ALL)


def apply_conditional_all(sql: str, variables: Mapping[str, VarValue]) -> str:
    """``$__conditionalAll(cond, $var)`` -> ``1=1`` when ``var`` is All or empty, else ``cond`` (innermost last)."""
    index = sql.rfind(_CONDITIONAL)
    while index != -1:
        params = _macro_args(sql, index + len(_CONDITIONAL) - 1)
        if len(params) != 2:
            return sql
        phrase = params[0]
        var = _CONDITIONAL_VAR.search(params[1].strip())
        if var and _is_all(variables.get(var.group(0))):
            phrase = "1=1"
        sql = sql.replace(f"{_CONDITIONAL}{params[0]},{params[1]})", phrase, 1)
        index = sql.rfind(_CONDITIONAL)
    return sql


def percent_encode(value: VarValue) -> str:
    """Grafana's ``percentencode`` format: encodeURIComponentStrict of the value, of ``{a,b}`` for several."""
    text = value if isinstance(value, str) else "{" + ",".join(value) + "}"
    return quote(text, safe="")  # leaves A-Za-z0-9 and -_.~ as encodeURIComponentStrict does


def _format(value: VarValue, fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt == "percentencode":
        return percent_encode(value)
    if fmt is None:  # the plugin's own format(): arrays quoted and joined, a single value as is
        return value if isinstance(value, str) else "'" + "','".join(values) + "'"
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt in ("raw", "csv"):
        return ",".join(values)
    raise DashboardError(f"template variable format {fmt!r} is not supported here")


def replace_variables(
    sql: str, variables: Mapping[str, VarValue], render: Callable[[str, VarValue, str | None], str] | None = None
) -> str:
    """Grafana's templateSrv.replace: known variables are substituted, unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name not in variables:
            return m.group(0)
        value = variables[name]
        return render(name, value, fmt) if render else _format(value, fmt)

    return _VARIABLE.sub(sub, sql)


# --- backend macros (pkg/macros/macros.go) ---


def _unix(t: datetime) -> int:
    return math.floor(t.timestamp())


def _dt(t: datetime) -> str:
    return f"toDateTime({_unix(t)})"


def _dt64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({math.floor(t.timestamp() * 1000)})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC).strftime('%Y-%m-%d')}')"


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Macro = Callable[[datetime, datetime, float, list[str]], str]


def _one(name: str, fn: Callable[[datetime, datetime, float, str], str]) -> Macro:
    def macro(f: datetime, t: datetime, i: float, args: list[str]) -> str:
        if len(args) != 1:
            raise DashboardError(f"$__{name}: expected 1 argument, received {len(args)}")
        return fn(f, t, i, args[0])

    return macro


def _date_time_filter(f: datetime, t: datetime, i: float, args: list[str]) -> str:
    if len(args) != 2:
        raise DashboardError(f"$__dateTimeFilter: expected 2 arguments, received {len(args)}")
    d, c = args
    return f"({d} >= {_date(f)} AND {d} <= {_date(t)}) AND ({c} >= {_dt(f)} AND {c} <= {_dt(t)})"


# The plugin's map plus the SDK defaults it does not override (timeFrom, timeTo, timeGroup, table, column).
MACROS: dict[str, Macro] = {
    "fromTime": lambda f, t, i, a: _dt(f),
    "toTime": lambda f, t, i, a: _dt(t),
    "fromTime_ms": lambda f, t, i, a: _dt64(f),
    "toTime_ms": lambda f, t, i, a: _dt64(t),
    "timeFilter": _one("timeFilter", lambda f, t, i, c: f"{c} >= {_dt(f)} AND {c} <= {_dt(t)}"),
    "timeFilter_ms": _one("timeFilter_ms", lambda f, t, i, c: f"{c} >= {_dt64(f)} AND {c} <= {_dt64(t)}"),
    "dateFilter": _one("dateFilter", lambda f, t, i, c: f"{c} >= {_date(f)} AND {c} <= {_date(t)}"),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _one(
        "timeInterval", lambda f, t, i, c: f"toStartOfInterval(toDateTime({c}), INTERVAL {int(max(i, 1))} second)"
    ),
    "timeInterval_ms": _one(
        "timeInterval_ms",
        lambda f, t, i, c: (
            f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {int(max(math.floor(i * 1000), 1))} millisecond)"
        ),
    ),
    "interval_s": lambda f, t, i, a: str(int(max(i, 1))),
    "timeFrom": _one("timeFrom", lambda f, t, i, c: f"{c} >= '{_rfc3339(f)}'"),
    "timeTo": _one("timeTo", lambda f, t, i, c: f"{c} <= '{_rfc3339(t)}'"),
}
ARGLESS = ("fromTime", "toTime", "fromTime_ms", "toTime_ms", "interval_s")


def macro_matches(sql: str, name: str) -> list[tuple[str, str]]:
    """The SDK's getMacroMatches: (text replaced, argument string) for each ``$__name`` occurrence."""
    out = []
    for m in re.finditer(rf"\$__{re.escape(name)}\b", sql):
        rest = sql[m.start() :]
        depth, end, arg_start = 0, 0, 0
        for idx, ch in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if ch == "(":
                depth += 1
                arg_start = arg_start or idx + 1
            elif ch == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = idx + 1
        if end == 0:
            end = m.end() - m.start()
        out.append((rest[:end], rest[arg_start : end - 1] if arg_start else ""))
    return out


def interpolate(sql: str, from_: datetime, to: datetime, interval_s: float) -> str:
    """The backend's macro pass (sqlutil.Interpolate with the plugin's macros)."""
    for name, macro in MACROS.items():
        for text, args in macro_matches(sql, name):
            # Go's strings.Split("", ",") is [""]: an argument-less call still passes one empty argument.
            sql = sql.replace(text, macro(from_, to, interval_s, [a.strip() for a in args.split(",")]))
    return sql


def expand_macros(sql: str, from_: datetime, to: datetime, interval_s: float, variables: Mapping[str, VarValue]) -> str:
    """The SQL the plugin sends to ClickHouse for this time range, interval and variable values."""
    sql = apply_conditional_all(sql, variables)
    sql = replace_variables(sql, variables)
    return interpolate(sql, from_, to, interval_s)


def bind(
    sql: str, from_: datetime, to: datetime, interval_s: float, variables: Mapping[str, VarValue]
) -> tuple[str, dict[str, str]]:
    """Like :func:`expand_macros`, but variable values become query parameters ``{v_name_i:String}``."""
    params: dict[str, str] = {}

    def render_quoted(m: re.Match[str]) -> str:  # '${v:percentencode}' (a whole literal) -> one parameter
        name = m.group(1)
        if name not in variables:
            return m.group(0)
        key = f"v_{name}_encoded"
        params[key] = percent_encode(variables[name])
        return f"{{{key}:String}}"

    def render(name: str, value: VarValue, fmt: str | None) -> str:
        values = [value] if isinstance(value, str) else list(value)
        refs = []
        for i, v in enumerate(values):
            key = f"v_{name}_{i}"
            params[key] = v
            refs.append(f"{{{key}:String}}")
        return ", ".join(refs)

    sql = apply_conditional_all(sql, variables)
    sql = _QUOTED_PERCENT.sub(render_quoted, sql)
    sql = replace_variables(sql, variables, render)
    return interpolate(sql, from_, to, interval_s), params


def check(sql: str) -> list[str]:
    """Problems the plugin would have with ``sql``: argument-less macros that swallow text."""
    problems = []
    for name in ARGLESS:
        for text, _ in macro_matches(sql, name):
            if text != f"$__{name}":
                problems.append(f"$__{name} would swallow {text!r}: put it right before a ')' or avoid it")
    return problems
