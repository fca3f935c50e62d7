"""The uids of the dashboards other rooms link to, so that a link and its dashboard cannot drift apart.

A page's Grafana link must open a dashboard that exists. ``alerts`` may not
import ``dashboards`` (see the README's "Layout"), so the uid lives in the core:
the dashboard definition (:mod:`dashboards.product`) takes its uid from here,
and the notifications (:mod:`alerts.notify.message`) link with the same name.
"""

from __future__ import annotations

PRODUCT = "pulse-product"
"""Product detail (variables ``product``, ``version``): where every product alert links to."""

RELEASES = "pulse-releases"
"""Release health (variable ``product``): versions side by side and the regression verdicts."""

PORTFOLIO = "pulse-portfolio"
"""Product portfolio (variable ``product``): every product's scorecard and the redesign candidates."""
