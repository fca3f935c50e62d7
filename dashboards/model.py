"""The dashboard model: one small, typed definition that renders to Grafana JSON and to HTML.

A :class:`Dashboard` holds template :class:`Variable` s and :class:`Panel` s.
A panel's data is one or more :class:`Query` s built by :mod:`dashboards.sql`
(ClickHouse, from the metric catalog) or PromQL (the pipeline dashboard).
Definitions are validated when built: panels sit on Grafana's 24-column grid
without overlapping, ``uid`` s are stable plain identifiers, and every query
names the columns it returns so tests can check them against a real engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from dashboards.errors import DashboardError

PanelKind = Literal["timeseries", "stat", "table", "bar"]
Datasource = Literal["clickhouse", "prometheus"]
GRID_COLUMNS = 24
_UID = re.compile(r"^[a-z][a-z0-9-]{2,39}$")


@dataclass(frozen=True)
class Query:
    """One query of a panel: its SQL (with Grafana macros) or PromQL, and the columns it returns.

    ``format`` is the plugin's: ``timeseries`` (a time column ``t``, group keys,
    values; Grafana splits series by the string columns) or ``table``.
    ``keys`` are the group columns (``t`` first for a time series), ``values``
    the value columns, in the order the SQL returns them.
    """

    text: str
    format: Literal["timeseries", "table"]
    keys: tuple[str, ...]
    values: tuple[str, ...]
    legend: str = ""  # PromQL legend format

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys + self.values


@dataclass(frozen=True)
class GridPos:
    x: int
    y: int
    w: int
    h: int

    def cells(self) -> set[tuple[int, int]]:
        return {(x, y) for x in range(self.x, self.x + self.w) for y in range(self.y, self.y + self.h)}


Step = tuple[float | None, str]  # a colour threshold: (from this value up, colour); the first value is None


@dataclass(frozen=True)
class Link:
    """A data link: a click on ``column`` opens dashboard ``uid`` with its variables set from the clicked row.

    ``variables`` pairs the target's variable with the column whose value it takes
    (``var-product=${__data.fields.product}``); ``column`` empty puts the link on
    every value field (a bar or a stat). The time range goes along.
    """

    column: str
    title: str
    uid: str
    variables: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Panel:
    """A panel: what it shows (``kind``), its queries, unit and place on the grid.

    ``labels`` maps value columns to readable names; ``highlight`` names a 0/1
    column whose 1 marks a row (the redesign candidates), ``description`` is
    shown as the panel's help text. ``thresholds`` colour a stat's value (a
    single step: one neutral colour), ``column_thresholds`` a table's columns;
    ``links`` lead to another dashboard (:class:`Link`).
    """

    title: str
    kind: PanelKind
    queries: tuple[Query, ...]
    grid: GridPos
    unit: str = "short"
    description: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    highlight: str = ""
    empty: str = "No data in this time range."
    thresholds: tuple[Step, ...] = ()
    column_thresholds: tuple[tuple[str, tuple[Step, ...]], ...] = ()
    links: tuple[Link, ...] = ()

    def label(self, column: str) -> str:
        return dict(self.labels).get(column, column.removeprefix("metric_").replace("_", " "))


@dataclass(frozen=True)
class Variable:
    """A template variable of type ``query``: its options come from ``query`` (first column)."""

    name: str
    label: str
    query: Query
    include_all: bool = False  # offers "All" (and several values); All turns $__conditionalAll into 1=1
    all_value: str = ""  # what All stands for, when not the list of options (Prometheus: ".*")


@dataclass(frozen=True)
class Annotation:
    """Events drawn on every time series (the releases), from a query returning ``time`` and ``text``."""

    name: str
    query: Query
    color: str = "#8e44ad"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    datasource: Datasource
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    tags: tuple[str, ...] = ("productpulse",)
    time_from: str = "now-14d"
    refresh: str = "1m"
    slug: str = field(default="")

    def __post_init__(self) -> None:
        if not _UID.match(self.uid):
            raise DashboardError(f"dashboard uid {self.uid!r} must be 3-40 lowercase letters, digits or '-'")
        taken: dict[tuple[int, int], str] = {}
        for panel in self.panels:
            g = panel.grid
            if g.x < 0 or g.y < 0 or g.w < 1 or g.h < 1 or g.x + g.w > GRID_COLUMNS:
                raise DashboardError(f"{self.uid}: panel {panel.title!r} is off the 24-column grid: {g}")
            for cell in g.cells():
                if cell in taken:
                    raise DashboardError(f"{self.uid}: panels {taken[cell]!r} and {panel.title!r} overlap at {cell}")
                taken[cell] = panel.title
        for panel in self.panels:
            if panel.kind == "stat" and not panel.thresholds:
                raise DashboardError(f"{self.uid}: stat {panel.title!r} needs thresholds (one step: a neutral colour)")
            columns = {c for q in panel.queries for c in q.columns}
            for link in panel.links:
                missing = [c for c in (link.column, *(f for _, f in link.variables)) if c and c not in columns]
                if missing:
                    raise DashboardError(f"{self.uid}: link on {panel.title!r} reads columns it lacks: {missing}")
        titles = [p.title for p in self.panels]
        if len(set(titles)) != len(titles):
            raise DashboardError(f"{self.uid}: panel titles must be unique")


class Grid:
    """Lays panels out left to right in rows, so definitions name sizes, not coordinates."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0

    def place(self, w: int, h: int) -> GridPos:
        if self.x + w > GRID_COLUMNS:
            self.newline()
        pos = GridPos(self.x, self.y, w, h)
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self) -> None:
        if self.x:
            self.y += self.row_h
        self.x, self.row_h = 0, 0
