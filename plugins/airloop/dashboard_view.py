"""HTML of the airloop view: a model index and one dashboard page per model.

Pure functions of :class:`include.dashboard.Dashboard` (the model page) and
:class:`include.dashboard.ModelIndex` (the index: one row per model with an inline SVG sparkline),
rendered by the report kit (``include/reports``: templates ``index.html`` and ``dashboard.html``,
one stylesheet, autoescape). Charts are plotly figures (JSON in the page, drawn by plotly.js: hover values,
zoom), each with a table of the same numbers under it, so people (and tests) read exact
figures. Formats: PSI with three decimals, ROC AUC with four, rows as plain integers.

plotly.js (4.5 MB) is served once by the plugin's ``/airloop/static/plotly.min.js`` route
(``web.py``) and cached by the browser, instead of being inlined in every page load; a page
rendered with ``plotly_src=None`` inlines it and opens on its own (screenshots, files).
Nothing here imports plotly: the figures are plain dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from include.reports.charts import (
    ACTION_COLORS,
    ALERT,
    CHAMPION,
    ESTIMATED,
    REALIZED,
    REFERENCE,
    REJECTED,
    RETRAIN,
    SCORED,
    WARN,
    Figure,
    band,
    day_axis,
    day_lines,
    interval_traces,
    layout,
    sparkline,
)
from include.reports.format import fmt_psi

if TYPE_CHECKING:
    from include.dashboard import Dashboard, ModelIndex

PREDICTION_ROW = "prediction (scores)"
PLOTLY_ROUTE = "../static/plotly.min.js"  # from /airloop/models/<model> to web.py's static route
# heatmap levels: a discrete colour per level, z is the level and the text is the PSI
LEVELS = {"ignored": 0, "ok": 1, "warn": 2, "alert": 3}
# pale fills so the PSI printed in each cell reads in dark text; the legend uses the same colours
HEATMAP_COLORS = ["#eeeeee", "#a5d6a7", "#ffe082", "#ef9a9a"]


def _level(value: float | None, warn: float, alert: float, ignored: bool) -> int | None:
    if value is None:
        return None
    if ignored:
        return LEVELS["ignored"]
    if value >= alert:
        return LEVELS["alert"]
    if value >= warn:
        return LEVELS["warn"]
    return LEVELS["ok"]


def _discrete_scale(colors: Sequence[str]) -> list[list[Any]]:
    """A plotly colorscale with one flat band per level 0..len-1 (zmin 0, zmax len-1)."""
    scale: list[list[Any]] = []
    n = len(colors)
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


# --------------------------------------------------------------------------- charts


def psi_heatmap_chart(dash: Dashboard) -> Figure:
    """Features (and the predictions' own PSI, top row) by day, coloured ok/warn/alert, the PSI
    printed in each cell and in the hover; features in ``drift.ignore`` pale; retrain days framed."""
    days = [d.day.isoformat() for d in dash.drift]
    rows = [PREDICTION_ROW, *dash.features]
    values = [[d.prediction_psi for d in dash.drift]]
    values += [[d.psi.get(name) for d in dash.drift] for name in dash.features]
    z = [
        [_level(v, dash.warn, dash.alert, name in dash.ignored) for v in row]
        for name, row in zip(rows, values, strict=True)
    ]
    labels = [f"{name} (ignored)" if name in dash.ignored else name for name in rows]
    frames = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": i - 0.5,
            "x1": i + 0.5,
            "y0": 0,
            "y1": 1,
            "line": {"color": RETRAIN, "width": 2.5},
            "name": f"retrain {days[i]}",
        }
        for i, d in enumerate(dash.drift)
        if d.day in set(dash.retrain_days)
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "x": list(range(len(days))),
                "y": labels,
                "z": z,
                "zmin": 0,
                "zmax": len(HEATMAP_COLORS) - 1,
                "colorscale": _discrete_scale(HEATMAP_COLORS),
                "showscale": False,
                "xgap": 2,
                "ygap": 2,
                "text": [[fmt_psi(v) for v in row] for row in values],
                "customdata": [days for _ in rows],
                "texttemplate": "%{text}" if len(days) <= 21 else "",
                "textfont": {"size": 9, "color": "#212121"},
                "hovertemplate": "%{y} %{customdata}: PSI %{text}<extra></extra>",
            }
        ],
        "layout": layout(
            height=40 + 22 * len(rows) + 40,
            margin={"l": 170, "t": 10},
            xaxis={"tickvals": list(range(len(days))), "ticktext": days, "showgrid": False, "automargin": True},
            yaxis={"autorange": "reversed", "showgrid": False},
            shapes=frames,
        ),
    }


def psi_score_chart(dash: Dashboard) -> Figure:
    """The day's drift score (max judged PSI) and the predictions' PSI over the warn and alert
    bands (log scale: a band at 0.1 stays readable next to a PSI of 3); retrain days marked."""
    days = [d.day.isoformat() for d in dash.drift]
    top = max([dash.alert * 4, *(v for d in dash.drift for v in (d.score, d.prediction_psi) if v)])
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "drift score (max judged PSI)",
                "x": days,
                "y": [d.score for d in dash.drift],
                "line": {"color": "#37474f"},
                "hovertemplate": "%{x}: max PSI %{y:.3f}<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "prediction drift (score PSI)",
                "x": days,
                "y": [d.prediction_psi for d in dash.drift],
                "line": {"color": "#8e24aa", "dash": "dot"},
                "hovertemplate": "%{x}: prediction PSI %{y:.3f}<extra></extra>",
            },
        ],
        "layout": layout(
            height=240,
            xaxis=day_axis(len(days)),
            yaxis={"type": "log", "title": {"text": "PSI"}, "tickvals": sorted({0.01, dash.warn, dash.alert, 1.0})},
            shapes=[
                band(dash.warn, dash.alert, WARN, f"warn band: {dash.warn:g} <= PSI < {dash.alert:g}", 0.18),
                band(dash.alert, top, ALERT, f"alert band: PSI >= {dash.alert:g}"),
                *day_lines([d.isoformat() for d in dash.retrain_days], RETRAIN, "retrain decided"),
            ],
        ),
    }


def volume_chart(dash: Dashboard) -> Figure:
    """Stacked bars of rows scored and rejected per day; retrain days and champion changes marked."""
    days = [v.day.isoformat() for v in dash.volume]
    changes = [e for e in dash.champion_changes if e.time.date() in {v.day for v in dash.volume}]
    peak = max((v.rows_in for v in dash.volume), default=0)
    return {
        "data": [
            {
                "type": "bar",
                "name": "scored",
                "x": days,
                "y": [v.rows_scored for v in dash.volume],
                "marker": {"color": SCORED},
                "text": [f"v{v.model_version}" for v in dash.volume],
                "textposition": "none",
                "hovertemplate": "%{x}: %{y} rows scored (%{text})<extra></extra>",
            },
            {
                "type": "bar",
                "name": "rejected",
                "x": days,
                "y": [v.rows_rejected for v in dash.volume],
                "marker": {"color": REJECTED},
                "hovertemplate": "%{x}: %{y} rows rejected<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": "champion changed",
                "x": [e.time.date().isoformat() for e in changes],
                "y": [peak * 1.05] * len(changes),
                "marker": {"color": CHAMPION, "size": 10},
                "text": [f"{e.action} v{e.version}" for e in changes],
                "hovertemplate": "%{x}: %{text}<extra></extra>",
            },
        ],
        "layout": layout(
            height=260,
            barmode="stack",
            xaxis=day_axis(len(days)),
            yaxis={"title": {"text": "rows"}},
            shapes=day_lines([d.isoformat() for d in dash.retrain_days], RETRAIN, "retrain decided"),
        ),
    }


def performance_chart(dash: Dashboard) -> Figure:
    """Realized ROC AUC per labelled day and the label-free estimate per scored day, each with
    its interval shaded, against the serving version's training ROC AUC; retrain days marked."""
    realized, estimated = list(dash.realized), list(dash.estimated)
    r_days = [p.label_day.isoformat() for p in realized]
    e_days = [p.day.isoformat() for p in estimated]
    reference = sorted(
        {(p.label_day.isoformat(), p.reference_auc) for p in realized if p.reference_auc is not None}
        | {(p.day.isoformat(), p.reference_auc) for p in estimated if p.reference_auc is not None}
    )
    data: list[dict[str, Any]] = [
        *interval_traces(
            r_days, [p.low for p in realized], [p.high for p in realized], REALIZED, "realized 95% interval", "realized"
        ),
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "realized ROC AUC (labels)",
            "legendgroup": "realized",
            "x": r_days,
            "y": [p.roc_auc for p in realized],
            "line": {"color": REALIZED},
            "customdata": [[p.day.isoformat(), p.rows, f"v{p.model_version}"] for p in realized],
            "hovertemplate": "%{x} (labels on %{customdata[0]}): ROC AUC %{y:.4f} on %{customdata[1]} rows, "
            "%{customdata[2]}<extra></extra>",
        },
        *interval_traces(
            e_days,
            [p.low for p in estimated],
            [p.high for p in estimated],
            ESTIMATED,
            "estimated interval",
            "estimated",
        ),
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "estimated ROC AUC (no labels)",
            "legendgroup": "estimated",
            "x": e_days,
            "y": [p.auc for p in estimated],
            "line": {"color": ESTIMATED, "dash": "dot"},
            "marker": {"symbol": ["circle" if p.valid else "x" for p in estimated], "size": 8},
            "customdata": [[p.rows, "" if p.valid else f" (not valid: {p.note})"] for p in estimated],
            "hovertemplate": "%{x}: estimated ROC AUC %{y:.4f} from %{customdata[0]} rows%{customdata[1]}"
            "<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "training ROC AUC",
            "x": [d for d, _ in reference],
            "y": [v for _, v in reference],
            "line": {"color": REFERENCE, "dash": "dash", "shape": "hv"},
            "hovertemplate": "%{x}: training ROC AUC %{y:.4f}<extra></extra>",
        },
    ]
    return {
        "data": data,
        "layout": layout(
            height=300,
            xaxis=day_axis(len({*r_days, *e_days})),
            yaxis={"title": {"text": "ROC AUC"}},
            shapes=day_lines([d.isoformat() for d in dash.retrain_days], RETRAIN, "retrain decided"),
        ),
    }


FAIRNESS_COLORS = ("#6a1b9a", "#00897b", "#ef6c00", "#1565c0", "#ad1457", "#558b2f")


def fairness_chart(dash: Dashboard) -> Figure:
    """Each limited disparity of the window of labelled days pooled, per labelled day, with its
    95% interval shaded and its limit (dashed, same colour); breach days marked with a red ring,
    days of a window too short to judge with an open marker; retrain days marked."""
    series: dict[str, list[Any]] = {}
    for point in dash.fairness:
        series.setdefault(point.series, []).append(point)
    data: list[dict[str, Any]] = []
    for i, (name, points) in enumerate(sorted(series.items())):
        color = FAIRNESS_COLORS[i % len(FAIRNESS_COLORS)]
        days = [p.label_day.isoformat() for p in points]
        data += interval_traces(days, [p.lower for p in points], [p.upper for p in points], color, f"{name} 95%", name)
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "legendgroup": name,
                "x": days,
                "y": [p.value for p in points],
                "line": {"color": color},
                "marker": {
                    "size": [10 if p.breach else 6 for p in points],
                    "symbol": ["circle" if p.judged else "circle-open" for p in points],
                    "line": {"color": [ALERT if p.breach else color for p in points], "width": 2},
                },
                "customdata": [
                    [
                        p.day.isoformat(),
                        p.rows,
                        f"v{p.model_version}",
                        "BREACH" if p.breach else ("within" if p.judged else "not judged"),
                        f"{p.high_group} vs {p.low_group}" if p.high_group else "",
                    ]
                    for p in points
                ],
                "hovertemplate": "window to %{x} (on %{customdata[0]}): %{y:.4f}, %{customdata[3]}; "
                "%{customdata[4]}; %{customdata[1]} rows, %{customdata[2]}<extra></extra>",
            }
        )
        limited = [p for p in points if p.limit is not None]
        if limited:
            data.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "name": f"{name} limit",
                    "legendgroup": name,
                    "x": [p.label_day.isoformat() for p in limited],
                    "y": [p.limit for p in limited],
                    "line": {"color": color, "dash": "dash", "shape": "hv"},
                    "hovertemplate": "limit %{y:.4f}<extra></extra>",
                }
            )
    return {
        "data": data,
        "layout": layout(
            height=300,
            xaxis=day_axis(len({p.label_day for p in dash.fairness})),
            yaxis={"title": {"text": "disparity (window)"}},
            shapes=day_lines([d.isoformat() for d in dash.retrain_days], RETRAIN, "retrain decided"),
        ),
    }


def timeline_chart(dash: Dashboard) -> Figure:
    """Ledger events on a time axis, coloured by action, labelled with the version."""
    events = list(dash.timeline)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "gate decisions",
                "x": [e.time.isoformat() for e in events],
                "y": [0] * len(events),
                "marker": {"size": 13, "color": [ACTION_COLORS.get(e.action, "#424242") for e in events]},
                "text": [f"{e.action} v{e.version}" for e in events],
                "textposition": ["top center" if i % 2 == 0 else "bottom center" for i in range(len(events))],
                "customdata": [e.summary for e in events],
                "hovertemplate": "%{x|%Y-%m-%d %H:%M} %{text}: %{customdata}<extra></extra>",
            }
        ],
        "layout": layout(
            height=150,
            showlegend=False,
            yaxis={"visible": False, "range": [-1, 1]},
            margin={"l": 40, "r": 40},
        ),
    }


def dashboard_charts(dash: Dashboard) -> dict[str, Figure]:
    """The page's charts by element id; a chart with nothing to draw is left out."""
    charts: dict[str, Figure] = {}
    if dash.timeline:
        charts["timeline-chart"] = timeline_chart(dash)
    if dash.drift and (dash.features or any(d.prediction_psi is not None for d in dash.drift)):
        charts["psi-heatmap"] = psi_heatmap_chart(dash)
        charts["psi-score"] = psi_score_chart(dash)
    if dash.volume:
        charts["volume-chart"] = volume_chart(dash)
    if dash.realized or dash.estimated:
        charts["performance-chart"] = performance_chart(dash)
    if dash.fairness:
        charts["fairness-chart"] = fairness_chart(dash)
    return charts


# --------------------------------------------------------------------------- pages


SPARK_SIZE = (120, 28)


def index_html(index: ModelIndex) -> str:
    """The index page: one row per model (see :func:`include.dashboard.gather_index`), its ROC AUC
    trend as an inline SVG sparkline (no script: the page stays light), a banner when the
    registry did not answer."""
    from include.dashboard import OPEN_ALERT_DAYS, SPARK_POINTS
    from include.reports.render import render

    sparks = {}
    for row in index.rows:
        lines = {
            "realized": [(p.label_day, p.roc_auc) for p in row.realized],
            "estimated": [(p.day, p.auc) for p in row.estimated],
        }
        values = [value for line in lines.values() for _, value in line if value is not None]
        sparks[row.model] = {
            "points": sparkline(lines, *SPARK_SIZE),
            "low": min(values, default=None),
            "high": max(values, default=None),
        }
    return render(
        "index.html",
        title="airloop models",
        index=index,
        sparks=sparks,
        spark_size=SPARK_SIZE,
        spark_points=SPARK_POINTS,
        alert_days=OPEN_ALERT_DAYS,
        colors={"realized": REALIZED, "estimated": ESTIMATED},
    )


def model_html(
    dash: Dashboard,
    *,
    mlflow_url: str | None = None,
    report_base: str = "../reports",
    days: int | None = None,
    plotly_src: str | None = PLOTLY_ROUTE,
) -> str:
    """The dashboard page of one model (``days``: the window shown, for the range links;
    ``plotly_src``: where the page loads plotly.js from, None to inline it)."""
    from include.reports.render import charts_context, render

    return render(
        "dashboard.html",
        title=f"airloop · {dash.model}",
        dash=dash,
        mlflow_url=mlflow_url,
        report_base=report_base,
        days=days,
        ranges=((30, "30 days"), (90, "90 days"), (365, "1 year"), (0, "all")),
        action_colors=ACTION_COLORS,
        legend=dict(zip(LEVELS, HEATMAP_COLORS, strict=True)) | {"retrain": RETRAIN},
        **charts_context(dashboard_charts(dash), plotly_src),
    )
