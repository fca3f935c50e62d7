"""Dashboards as code: one Python definition per dashboard, rendered as Grafana JSON and as the built-in view.

* :mod:`dashboards.model` - the small model (Dashboard, Panel, Query, Variable, Annotation);
* :mod:`dashboards.sql` - panel SQL with Grafana macros, built from the metric catalog;
* :mod:`dashboards.portfolio`, :mod:`.product`, :mod:`.releases`, :mod:`.operations` - the four definitions;
* :mod:`dashboards.grafana` - Grafana JSON (``build_all(out_dir)`` writes ``dashboards/grafana/*.json``);
* :mod:`dashboards.pages` - the worker's built-in HTML view (``render_page``), charts from :mod:`.svg`;
* :mod:`dashboards.macros` - the ClickHouse plugin's macro and variable expansion, reproduced.
"""

from dashboards.grafana import build_all
from dashboards.pages import render_page

__all__ = ["build_all", "render_page"]
