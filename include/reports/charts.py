"""Chart figures as plain plotly figure dicts (``{"data": [...], "layout": {...}}``).

Pages embed these dicts as JSON and plotly.js draws them in the browser: hover values, zoom and
pan, offline. Building the dicts needs no plotly import (pages render fast, and plugin modules
never import plotly at parse time); ``tests`` check every figure against plotly's own schema.
Numbers go in as they are (the hover shows them with the page's precision) and ``None`` where a
value is missing, which plotly draws as a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from include.reports.format import finite

Figure = dict[str, Any]

# One palette for every page.
OK, WARN, ALERT, NONE = "#2e7d32", "#f9a825", "#c62828", "#bdbdbd"
SCORED, REJECTED, RETRAIN, CHAMPION = "#1565c0", "#c62828", "#6a1b9a", "#00897b"
REALIZED, ESTIMATED, REFERENCE = "#1565c0", "#ef6c00", "#757575"
ACTION_COLORS = {
    "promote": "#2e7d32",
    "reject": "#c62828",
    "approval_rejected": "#ad1457",
    "superseded": "#9e9e9e",
    "dry_run": "#757575",
    "rollback": "#ef6c00",
    "pending": "#f9a825",
    "breaker_reset": "#1565c0",
}
POLICY_COLORS = {"drift": "#c0392b", "calendar": "#2471a3", "frozen": "#7f8c8d", "oracle": "#117a65"}
FONT = {"family": 'system-ui,-apple-system,"Segoe UI",Roboto,sans-serif', "size": 11, "color": "#424242"}


def layout(*, height: int = 260, **extra: Any) -> dict[str, Any]:
    """The layout every chart starts from: small margins, the page's font, a legend on top (the
    chart's title is the page's heading above it: a plotly title would collide with the legend)."""
    base: dict[str, Any] = {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 16, "b": 40},
        "font": FONT,
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fff",
        "hovermode": "closest",
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 10}},
        "xaxis": {"gridcolor": "#eeeeee", "zeroline": False},
        "yaxis": {"gridcolor": "#eeeeee", "zeroline": False},
    }
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


DAY_MS = 86_400_000


def day_axis(days: int, **extra: Any) -> dict[str, Any]:
    """An x axis of calendar days: one tick per day while there are few (plotly would otherwise
    add 12:00 ticks between them), plotly's own spacing beyond two weeks."""
    axis: dict[str, Any] = {"type": "date", "tickformat": "%Y-%m-%d", "hoverformat": "%Y-%m-%d", **extra}
    if days <= 14:
        axis["dtick"] = DAY_MS
    return axis


def day_lines(days: Iterable[str], color: str, name: str, dash: str = "dash") -> list[dict[str, Any]]:
    """Vertical lines across the plot at ``days`` (layout shapes), e.g. the days a retrain was decided."""
    return [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": day,
            "x1": day,
            "y0": 0,
            "y1": 1,
            "line": {"color": color, "width": 1.5, "dash": dash},
            "name": name,
        }
        for day in days
    ]


def band(low: float, high: float, color: str, name: str, opacity: float = 0.15) -> dict[str, Any]:
    """A horizontal band between ``low`` and ``high`` (layout shape), e.g. the warn band of PSI."""
    return {
        "type": "rect",
        "xref": "paper",
        "yref": "y",
        "x0": 0,
        "x1": 1,
        "y0": low,
        "y1": high,
        "fillcolor": color,
        "opacity": opacity,
        "line": {"width": 0},
        "layer": "below",
        "name": name,
    }


def interval_traces(
    x: Sequence[str],
    low: Sequence[float | None],
    high: Sequence[float | None],
    color: str,
    name: str,
    group: str,
) -> list[dict[str, Any]]:
    """A shaded interval: an invisible lower line and an upper line filled down to it."""
    common = {"type": "scatter", "mode": "lines", "x": list(x), "legendgroup": group, "hoverinfo": "skip"}
    return [
        {
            **common,
            "y": [finite(v) for v in low],
            "line": {"width": 0, "color": color},
            "showlegend": False,
            "name": f"{name} low",
        },
        {
            **common,
            "y": [finite(v) for v in high],
            "line": {"width": 0, "color": color},
            "fill": "tonexty",
            "fillcolor": _rgba(color, 0.18),
            "name": name,
        },
    ]


def sparkline(
    series: Mapping[str, Sequence[tuple[date, float | None]]], width: int = 120, height: int = 28, pad: float = 2.0
) -> dict[str, str]:
    """SVG ``polyline`` points (``"x,y x,y ..."``) of each named series of ``(day, value)``, on
    one shared scale: days left to right across every series, values bottom to top between their
    common minimum and maximum (a flat series sits in the middle). Missing values break nothing:
    they are left out. For the index page's inline sparklines, which need no script."""
    clean = {
        name: [(day, v) for day, value in line if (v := finite(value)) is not None] for name, line in series.items()
    }
    points = [point for line in clean.values() for point in line]
    if not points:
        return {name: "" for name in series}
    first = min(day for day, _ in points).toordinal()
    span_days = max(day for day, _ in points).toordinal() - first
    low, high = min(v for _, v in points), max(v for _, v in points)

    def xy(day: date, value: float) -> str:
        x = pad + (width - 2 * pad) * ((day.toordinal() - first) / span_days if span_days else 0.5)
        y = height / 2 if high == low else pad + (height - 2 * pad) * (high - value) / (high - low)
        return f"{x:.1f},{y:.1f}"

    return {name: " ".join(xy(day, value) for day, value in line) for name, line in clean.items()}


def _rgba(color: str, alpha: float) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


__all__ = [
    "ACTION_COLORS",
    "ALERT",
    "CHAMPION",
    "ESTIMATED",
    "NONE",
    "OK",
    "POLICY_COLORS",
    "REALIZED",
    "REFERENCE",
    "REJECTED",
    "RETRAIN",
    "SCORED",
    "WARN",
    "Figure",
    "band",
    "day_axis",
    "day_lines",
    "interval_traces",
    "layout",
    "sparkline",
]
