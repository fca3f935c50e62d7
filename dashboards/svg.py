"""Charts drawn on the server as inline SVG: line charts, sparklines and horizontal bars.

No script and no external resource: a page is readable as delivered. Every
label is HTML-escaped here; callers pass plain values. NaN points are gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
Point = tuple[float, float]


def fmt(value: object, unit: str = "short") -> str:
    """A value as a person reads it, for ``unit`` (Grafana's unit names)."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return "–"
        if unit == "percentunit":
            return f"{v * 100:.2f}%"
        if unit == "ms":
            return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"
        if unit == "s":
            return f"{v:.1f} s"
        if unit == "currencyUSD":
            return f"${v:,.2f}"
        if isinstance(value, int) or v.is_integer():
            return f"{v:,.0f}"
        return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"
    return str(value)


def epoch(t: object) -> float:
    if isinstance(t, datetime):
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return float(t)  # type: ignore[arg-type]


def _finite(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v))


def _segments(points: Sequence[Point]) -> list[list[Point]]:
    out: list[list[Point]] = [[]]
    for x, y in points:
        if _finite(y):
            out[-1].append((x, y))
        elif out[-1]:
            out.append([])
    return [s for s in out if s]


def line_chart(series: Sequence[tuple[str, Sequence[Point]]], unit: str, width: int = 640, height: int = 220) -> str:
    """A multi-series line chart (x = unix seconds) with y range, first/last date and a legend."""
    pts = [(x, y) for _, s in series for x, y in s if _finite(y)]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)
    if y1 == y0:
        y1 = y0 + 1
    if x1 == x0:
        x1 = x0 + 1
    left, right, top, bottom = 64, 8, 8, 22
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + h - (y - y0) / (y1 - y0) * h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fafafa" stroke="#ddd"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        yv = y0 + frac * (y1 - y0)
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" text-anchor="end">{escape(fmt(yv, unit))}</text>')
    for xv, anchor in ((x0, "start"), (x1, "end")):
        label = datetime.fromtimestamp(xv, UTC).strftime("%m-%d %H:%M")
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - 6}" text-anchor="{anchor}">{label}</text>')
    legend = []
    for i, (name, points) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        for seg in _segments(points):
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in seg)
            if len(seg) == 1:
                parts.append(f'<circle cx="{sx(seg[0][0]):.1f}" cy="{sy(seg[0][1]):.1f}" r="2" fill="{color}"/>')
            else:
                parts.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        last = [y for _, y in points if _finite(y)]
        value = f" ({escape(fmt(last[-1], unit))})" if last else ""
        legend.append(f'<li><span class="swatch" style="background:{color}"></span>{escape(name)}{value}</li>')
    parts.append("</svg>")
    return "".join(parts) + f'<ul class="legend">{"".join(legend)}</ul>'


def sparkline(points: Sequence[Point], width: int = 120, height: int = 28, color: str = PALETTE[0]) -> str:
    """A small trend line without axes (for the portfolio's product cards)."""
    finite = [(x, y) for x, y in points if _finite(y)]
    if len(finite) < 2:
        return '<span class="muted">no trend</span>'
    x0, x1 = finite[0][0], finite[-1][0]
    lo, hi = min(y for _, y in finite), max(y for _, y in finite)
    span_x, span_y = (x1 - x0) or 1, (hi - lo) or 1
    coords = " ".join(
        f"{(x - x0) / span_x * (width - 2) + 1:.1f},{height - 1 - (y - lo) / span_y * (height - 2):.1f}"
        for x, y in finite
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><polyline points="{coords}" fill="none" stroke="{color}" '
        'stroke-width="1.5"/></svg>'
    )


def bar_chart(items: Sequence[tuple[str, float]], unit: str, width: int = 640) -> str:
    """Horizontal bars, one per labelled value."""
    finite = [(k, v) for k, v in items if _finite(v)]
    if not finite:
        return ""
    top = max(max(v for _, v in finite), 0) or 1
    row, label_w = 22, 170
    height = row * len(finite) + 4
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, v) in enumerate(finite):
        y = 2 + i * row
        bw = max(v, 0) / top * (width - label_w - 90)
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bw:.1f}" height="{row - 6}" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{label_w + bw + 4:.1f}" y="{y + 15}">{escape(fmt(v, unit))}</text>')
    parts.append("</svg>")
    return "".join(parts)
