"""Render dashboard definitions as Grafana dashboard JSON, and write them (``build_all``).

Targets are written for the ``grafana-clickhouse-datasource`` plugin v4 as the
plugin itself saves them: ``editorType: "sql"``, ``rawSql``, ``format`` (0 time
series, 1 table), an explicit ``queryType`` and ``pluginVersion`` - a target
without them is taken for a v3 query and rewritten by the plugin's migration.
Datasources are referenced by the fixed uids of ``deploy/grafana/provisioning``.

Output is byte-stable: sorted keys, two-space indent, a newline at the end, no
timestamps or ids that change between runs; panel ids follow definition order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dashboards.model import Annotation, Dashboard, Link, Panel, Query, Step, Variable
from dashboards.registry import DEFAULT_DATABASE, all_dashboards
from dashboards.sql import partial_bucket_note, unit_of

CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "pulse-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "pulse-prometheus"}
PLUGIN_VERSION = "4.10.1"
SCHEMA_VERSION = 39
_PANEL_TYPES = {"timeseries": "timeseries", "stat": "stat", "table": "table", "bar": "barchart"}
_FORMAT = {"timeseries": 0, "table": 1}


def _datasource(d: Dashboard) -> dict[str, str]:
    return CLICKHOUSE if d.datasource == "clickhouse" else PROMETHEUS


def _ref(i: int) -> str:
    return chr(ord("A") + i)


def ch_target(q: Query, ref: str) -> dict[str, Any]:
    return {
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": _FORMAT[q.format],
        "pluginVersion": PLUGIN_VERSION,
        "queryType": q.format,
        "rawSql": q.text,
        "refId": ref,
    }


def _prom_target(q: Query, ref: str) -> dict[str, Any]:
    return {
        "datasource": PROMETHEUS,
        "editorMode": "code",
        "expr": q.text,
        "legendFormat": q.legend or "__auto",
        "range": True,
        "refId": ref,
    }


def thresholds_json(steps: tuple[Step, ...]) -> dict[str, Any]:
    """Grafana's absolute thresholds (the base step's value is null: from minus infinity)."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def link_url(link: Link) -> str:
    """``/d/<uid>?var-<name>=${__data.fields.<column>}&...&${__url_time_range}`` (the row's values, same time)."""
    query = "&".join(f"var-{name}=${{__data.fields.{column}}}" for name, column in link.variables)
    return f"/d/{link.uid}?{query}&${{__url_time_range}}"


def _link_json(link: Link) -> dict[str, Any]:
    return {"targetBlank": False, "title": link.title, "url": link_url(link)}


def _overrides(panel: Panel) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    links = [link for link in panel.links if link.column]
    for column in dict.fromkeys(link.column for link in links):
        out.append({"matcher": {"id": "byName", "options": column}, "properties": [
            {"id": "links", "value": [_link_json(link) for link in links if link.column == column]},
        ]})  # fmt: skip
    for column, steps in panel.column_thresholds:
        out.append({"matcher": {"id": "byName", "options": column}, "properties": [
            {"id": "thresholds", "value": thresholds_json(steps)},
            {"id": "color", "value": {"mode": "thresholds"}},
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
        ]})  # fmt: skip
    if panel.kind == "table":
        columns = [c for q in panel.queries for c in q.values]
        for column in columns:
            props: list[dict[str, Any]] = [{"id": "displayName", "value": panel.label(column)}]
            if unit_of(column):
                props.append({"id": "unit", "value": unit_of(column)})
            if column == panel.highlight:
                props += [
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {
                        "id": "mappings",
                        "value": [{"type": "value", "options": {
                            "0": {"color": "green", "index": 0, "text": "no"},
                            "1": {"color": "red", "index": 1, "text": "YES"},
                        }}],
                    },
                ]  # fmt: skip
            out.append({"matcher": {"id": "byName", "options": column}, "properties": props})
    return out


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value",
        }
    if panel.kind == "table":
        return {"cellHeight": "sm", "showHeader": True}
    if panel.kind == "bar":
        keys = panel.queries[0].keys
        return {"orientation": "auto", "showValue": "auto", "xField": keys[-1] if keys else ""}
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, "tooltip": {"mode": "multi"}}


def panel_json(d: Dashboard, panel: Panel, panel_id: int) -> dict[str, Any]:
    ds = _datasource(d)
    target = ch_target if d.datasource == "clickhouse" else _prom_target
    defaults: dict[str, Any] = {"noValue": panel.empty, "unit": panel.unit}
    if panel.thresholds:
        defaults["thresholds"] = thresholds_json(panel.thresholds)
        defaults["color"] = {"mode": "thresholds"}
    if any(not link.column for link in panel.links):
        defaults["links"] = [_link_json(link) for link in panel.links if not link.column]
    out: dict[str, Any] = {
        "datasource": ds,
        "description": " ".join(t for t in (panel.description, partial_bucket_note(panel.queries)) if t),
        "fieldConfig": {"defaults": defaults, "overrides": _overrides(panel)},
        "gridPos": {"h": panel.grid.h, "w": panel.grid.w, "x": panel.grid.x, "y": panel.grid.y},
        "id": panel_id,
        "options": _options(panel),
        "targets": [target(q, _ref(i)) for i, q in enumerate(panel.queries)],
        "title": panel.title,
        "type": _PANEL_TYPES[panel.kind],
    }
    if len(panel.queries) > 1 and panel.kind in ("table", "bar", "stat"):
        out["transformations"] = [{"id": "merge", "options": {}}]  # one row per key across the catalog's sources
    return out


def _variable_json(d: Dashboard, v: Variable) -> dict[str, Any]:
    if d.datasource == "clickhouse":
        query: Any = ch_target(v.query, v.name)
        definition = v.query.text
    else:
        query = {"qryType": 1, "query": v.query.text, "refId": f"PrometheusVariableQueryEditor-{v.name}"}
        definition = v.query.text
    current: dict[str, Any] = {}
    if v.include_all:
        current = {"selected": True, "text": ["All"], "value": ["$__all"]}
    out: dict[str, Any] = {
        "current": current,
        "datasource": _datasource(d),
        "definition": definition,
        "hide": 0,
        "includeAll": v.include_all,
        "label": v.label,
        "multi": v.include_all,
        "name": v.name,
        "options": [],
        "query": query,
        "refresh": 2,  # on time range change: the options are what has data in the range
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if v.all_value:
        out["allValue"] = v.all_value
    return out


def _annotation_json(a: Annotation) -> dict[str, Any]:
    return {
        "datasource": CLICKHOUSE,
        "enable": True,
        "hide": False,
        "iconColor": a.color,
        "name": a.name,
        "target": ch_target(a.query, "Anno"),
    }


_BUILTIN_ANNOTATION = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard model of ``d`` (no ``id``: provisioning assigns it; the ``uid`` is fixed)."""
    return {
        "annotations": {"list": [_BUILTIN_ANNOTATION] + [_annotation_json(a) for a in d.annotations]},
        "description": d.description,
        "editable": True,
        "graphTooltip": 1,
        "links": [{"asDropdown": False, "icon": "external link", "includeVars": False, "keepTime": True,
                   "tags": ["productpulse"], "title": "ProductPulse", "type": "dashboards"}],
        "panels": [panel_json(d, p, i + 1) for i, p in enumerate(d.panels)],
        "refresh": d.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(d.tags),
        "templating": {"list": [_variable_json(d, v) for v in d.variables]},
        "time": {"from": d.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": d.title,
        "uid": d.uid,
        "version": 1,
    }  # fmt: skip


def render(d: Dashboard) -> str:
    """The committed text of a dashboard: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(dashboard_json(d), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def build_all(out_dir: Path, database: str = DEFAULT_DATABASE) -> list[Path]:
    """Write every dashboard as ``<out_dir>/<uid>.json``; returns the paths written (sorted)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for d in all_dashboards(database):
        path = out_dir / f"{d.uid}.json"
        text = render(d)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return sorted(paths)
