"""Every dashboard definition, by uid: what ``build_all`` writes and the built-in view serves."""

from __future__ import annotations

from dashboards.model import Dashboard
from dashboards.operations import operations
from dashboards.portfolio import portfolio
from dashboards.product import product_detail
from dashboards.releases import release_health

DEFAULT_DATABASE = "pulse"


def all_dashboards(database: str = DEFAULT_DATABASE) -> tuple[Dashboard, ...]:
    """The four dashboards; ClickHouse ones read ``database``."""
    return (portfolio(database), product_detail(database), release_health(database), operations())
