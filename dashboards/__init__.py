"""Grafana dashboards as code (to come; see DESIGN.md)."""
