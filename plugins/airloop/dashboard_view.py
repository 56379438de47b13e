"""HTML of the airloop view: a model index and one dashboard page per model.

Pure functions of :class:`include.dashboard.Dashboard`: no I/O, no JavaScript, no CDN. Charts
are inline SVG drawn here (the UI runs offline), each with ``<title>`` tooltips and a table of
the same numbers under it, so people (and tests) read exact figures. Formats: PSI with three
decimals, ROC AUC with four, rows as plain integers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.dashboard import Dashboard, VersionInfo

OK, WARN, ALERT, NONE = "#2e7d32", "#f9a825", "#c62828", "#bdbdbd"
SCORED, REJECTED, RETRAIN, CHAMPION = "#1565c0", "#c62828", "#6a1b9a", "#00897b"
ACTION_COLORS = {
    "promote": "#2e7d32",
    "reject": "#c62828",
    "approval_rejected": "#ad1457",
    "dry_run": "#757575",
    "rollback": "#ef6c00",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px;color:#212121;background:#fff}
h1{font-size:1.4rem;margin:0 0 4px} h2{font-size:1.1rem;margin:24px 0 8px;border-bottom:1px solid #e0e0e0}
.cards{display:flex;gap:16px;flex-wrap:wrap} .card{border:1px solid #e0e0e0;border-radius:8px;padding:12px 16px;min-width:260px}
.card h3{margin:0 0 6px;font-size:1rem} .big{font-size:1.6rem;font-weight:600}
table{border-collapse:collapse;font-size:.85rem;margin:6px 0} td,th{border:1px solid #e0e0e0;padding:3px 8px;text-align:left}
th{background:#fafafa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#757575;font-size:.85rem} .warn{color:#8d6e00} .err{color:#c62828}
svg{display:block;max-width:100%;height:auto} svg text{font-size:11px;fill:#424242}
details{margin:4px 0} a{color:#1565c0}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def fmt_psi(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body>{body}</body></html>"
    )


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, table_id: str, numeric: set[int] | None = None
) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------- index


def index_html(models: Sequence[str]) -> str:
    items = "".join(f'<li><a href="models/{esc(m)}">{esc(m)}</a></li>' for m in models)
    body = (
        "<h1>airloop models</h1>"
        '<p class="muted">Champion, challenger, gate decisions, drift, prediction volume and realized '
        "performance of each model.</p>"
        f'<ul id="models">{items or "<li>No model specs found.</li>"}</ul>'
    )
    return page("airloop models", body)


# --------------------------------------------------------------------------- model page


def _version_card(role: str, info: VersionInfo | None, mlflow_url: str | None, model: str) -> str:
    if info is None:
        return f'<div class="card" id="{role}"><h3>{role.title()}</h3><p class="muted">none</p></div>'
    link = ""
    if mlflow_url:
        link = f'<a href="{esc(mlflow_url)}/#/models/{esc(model)}/versions/{info.version}">MLflow version</a>'
        if info.run_id and info.experiment_id:
            link += (
                f' · <a href="{esc(mlflow_url)}/#/experiments/{esc(info.experiment_id)}/runs/{esc(info.run_id)}">'
                "training run</a>"
            )
    metrics = "".join(
        f"<tr><th>{esc(k)}</th><td class=num>{fmt_auc(v)}</td></tr>" for k, v in sorted(info.metrics.items())
    )
    return (
        f'<div class="card" id="{role}"><h3>{role.title()}</h3>'
        f'<div class="big">v{info.version}</div>'
        f'<div>ROC AUC <b class="roc-auc">{fmt_auc(info.roc_auc)}</b></div>'
        f'<div class="muted">{esc(info.estimator or "")} · window {esc(info.data_window or "?")}</div>'
        f'<div class="muted">{esc(info.reason or "")}</div>'
        f"<table>{metrics}</table>{link}</div>"
    )


def _day_axis(days: Sequence[date], x0: float, step: float, y: float) -> str:
    """Date labels under a day axis: every label when few, else about eight."""
    if not days:
        return ""
    every = max(1, len(days) // 8)
    return "".join(
        f'<text x="{x0 + (i + 0.5) * step:.1f}" y="{y:.1f}" text-anchor="middle">{d.strftime("%m-%d")}</text>'
        for i, d in enumerate(days)
        if i % every == 0 or i == len(days) - 1
    )


def _psi_color(value: float | None, warn: float, alert: float) -> str:
    if value is None:
        return NONE
    if value >= alert:
        return ALERT
    if value >= warn:
        return WARN
    return OK


def psi_heatmap_svg(dash: Dashboard) -> str:
    """Features x days, coloured by level (ok/warn/alert), value in the tooltip; retrains marked."""
    days = [d.day for d in dash.drift]
    features = list(dash.features)
    if not days or not features:
        return (
            '<p class="muted" id="psi-heatmap-empty">No drift records yet (the monitor writes one per scored day).</p>'
        )
    label_w, top, cell_h = 170, 24, 18
    step = max(12.0, min(48.0, 720 / len(days)))
    width, height = label_w + step * len(days) + 10, top + cell_h * len(features) + 22
    parts = [
        f'<svg id="psi-heatmap" role="img" aria-label="PSI per feature and day" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">'
    ]
    retrains = set(dash.retrain_days)
    for j, day in enumerate(dash.drift):
        x = label_w + j * step
        if day.day in retrains:
            parts.append(
                f'<g class="retrain-marker" data-day="{day.day}"><rect x="{x:.1f}" y="4" width="{step:.1f}" '
                f'height="{top + cell_h * len(features) - 4}" fill="none" stroke="{RETRAIN}" stroke-width="2"/>'
                f'<text x="{x + step / 2:.1f}" y="14" text-anchor="middle" fill="{RETRAIN}">retrain</text></g>'
            )
    for i, name in enumerate(features):
        y = top + i * cell_h
        ignored = name in dash.ignored
        label = f"{name} (ignored)" if ignored else name
        dim = ' opacity="0.35"' if ignored else ""
        parts.append(f'<text x="{label_w - 6}" y="{y + cell_h * 0.7:.1f}" text-anchor="end">{esc(label)}</text>')
        for j, day in enumerate(dash.drift):
            value = day.psi.get(name)
            parts.append(
                f'<rect class="psi-cell" data-feature="{esc(name)}" data-day="{day.day}" data-psi="{fmt_psi(value)}" '
                f'x="{label_w + j * step + 1:.1f}" y="{y + 1}" width="{step - 2:.1f}" height="{cell_h - 2}" '
                f'fill="{_psi_color(value, dash.warn, dash.alert)}"{dim}>'
                f"<title>{esc(name)} {day.day}: PSI "
                f"{fmt_psi(value)}</title></rect>"
            )
            if step >= 40 and value is not None:  # room for the number itself
                parts.append(
                    f'<text x="{label_w + (j + 0.5) * step:.1f}" y="{y + cell_h * 0.7:.1f}" text-anchor="middle" '
                    f'style="font-size:9px;fill:#fff">{fmt_psi(value)}</text>'
                )
    parts.append(_day_axis(days, label_w, step, height - 6))
    parts.append("</svg>")
    legend = (
        f'<div class="legend muted"><span style="background:{OK}"></span>PSI &lt; {dash.warn:g}'
        f'<span style="background:{WARN}"></span>warn ≥ {dash.warn:g}'
        f'<span style="background:{ALERT}"></span>alert ≥ {dash.alert:g}'
        f'<span style="background:{NONE}"></span>not computed'
        f'<span style="background:{OK};opacity:.35"></span>ignored by the spec (drift.ignore): not judged'
        f'<span style="background:none;border:2px solid {RETRAIN}"></span>retrain decided</div>'
    )
    return "".join(parts) + legend


def psi_score_svg(dash: Dashboard) -> str:
    """The day's drift score (max judged PSI) as a line over warn/alert bands."""
    points = [(d.day, d.score) for d in dash.drift]
    if not points:
        return ""
    left, top, plot_h = 50, 10, 150
    step = max(12.0, min(48.0, 720 / len(points)))
    width, height = left + step * len(points) + 10, top + plot_h + 26
    top_value = max([dash.alert * 1.5, *(s for _, s in points if s is not None)])

    def y(v: float) -> float:
        # square-root scale: the warn/alert bands stay readable next to a PSI of 2 or 3
        return top + plot_h * (1 - math.sqrt(max(0.0, min(v, top_value)) / top_value))

    parts = [
        f'<svg id="psi-score" role="img" aria-label="Daily drift score with warn and alert bands" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">',
        f'<rect class="band-warn" x="{left}" y="{y(dash.alert):.1f}" width="{step * len(points):.1f}" '
        f'height="{y(dash.warn) - y(dash.alert):.1f}" fill="{WARN}" opacity="0.18"><title>warn band: '
        f"{dash.warn:g} ≤ PSI &lt; {dash.alert:g}</title></rect>",
        f'<rect class="band-alert" x="{left}" y="{top}" width="{step * len(points):.1f}" '
        f'height="{y(dash.alert) - top:.1f}" fill="{ALERT}" opacity="0.15"><title>alert band: PSI ≥ {dash.alert:g}'
        "</title></rect>",
        f'<text x="{left - 4}" y="{y(dash.warn) + 4:.1f}" text-anchor="end">{dash.warn:g}</text>',
        f'<text x="{left - 4}" y="{y(dash.alert) + 4:.1f}" text-anchor="end">{dash.alert:g}</text>',
        f'<text x="{left - 4}" y="{y(0) + 4:.1f}" text-anchor="end">0</text>',
        f'<text x="{left - 4}" y="{y(top_value) + 8:.1f}" text-anchor="end">{top_value:.2g}</text>',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + step * len(points):.1f}" y2="{y(0):.1f}" stroke="#9e9e9e"/>',
    ]
    for j, day in enumerate(dash.drift):
        if day.day in set(dash.retrain_days):
            x = left + (j + 0.5) * step
            parts.append(
                f'<line class="retrain-marker" data-day="{day.day}" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                f'y2="{y(0):.1f}" stroke="{RETRAIN}" stroke-dasharray="4 3"><title>retrain decided {day.day}</title></line>'
            )
    coords = [(left + (j + 0.5) * step, y(s)) for j, (_, s) in enumerate(points) if s is not None]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#37474f" stroke-width="1.5"/>')
    for j, (day, score) in enumerate(points):
        if score is None:
            continue
        parts.append(
            f'<circle class="score-point" data-day="{day}" data-score="{fmt_psi(score)}" cx="{left + (j + 0.5) * step:.1f}" '
            f'cy="{y(score):.1f}" r="3.5" fill="{_psi_color(score, dash.warn, dash.alert)}"><title>{day}: score '
            f"{fmt_psi(score)}</title></circle>"
        )
    parts.append(_day_axis([d for d, _ in points], left, step, height - 6))
    parts.append("</svg>")
    return "".join(parts)


def volume_svg(dash: Dashboard) -> str:
    """Stacked bars: rows scored and rejected per day; retrain days and champion changes marked."""
    if not dash.volume:
        return '<p class="muted" id="volume-empty">No scored days yet.</p>'
    left, top, plot_h = 60, 10, 150
    step = max(12.0, min(48.0, 720 / len(dash.volume)))
    width, height = left + step * len(dash.volume) + 10, top + plot_h + 26
    peak = max(v.rows_in for v in dash.volume) or 1

    def h(rows: int) -> float:
        return plot_h * rows / peak

    parts = [
        f'<svg id="volume-chart" role="img" aria-label="Rows scored and rejected per day" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    retrains = set(dash.retrain_days)
    promoted = {e.time.date(): e for e in dash.champion_changes}
    base = top + plot_h
    for j, v in enumerate(dash.volume):
        x = left + j * step + 1
        parts.append(
            f'<rect class="bar-scored" data-day="{v.day}" data-rows="{v.rows_scored}" x="{x:.1f}" '
            f'y="{base - h(v.rows_scored):.1f}" width="{step - 2:.1f}" height="{h(v.rows_scored):.1f}" fill="{SCORED}">'
            f"<title>{v.day}: {v.rows_scored} rows scored (v{v.model_version})</title></rect>"
        )
        parts.append(
            f'<rect class="bar-rejected" data-day="{v.day}" data-rows="{v.rows_rejected}" x="{x:.1f}" '
            f'y="{base - h(v.rows_in):.1f}" width="{step - 2:.1f}" height="{h(v.rows_rejected):.1f}" fill="{REJECTED}">'
            f"<title>{v.day}: {v.rows_rejected} rows rejected</title></rect>"
        )
        cx = x + (step - 2) / 2
        if v.day in retrains:
            parts.append(
                f'<line class="retrain-marker" data-day="{v.day}" x1="{cx:.1f}" y1="{top}" x2="{cx:.1f}" y2="{base}" '
                f'stroke="{RETRAIN}" stroke-dasharray="4 3"><title>retrain decided {v.day}</title></line>'
            )
        if v.day in promoted:
            event = promoted[v.day]
            parts.append(
                f'<circle class="champion-marker" cx="{cx:.1f}" cy="{top + 4}" r="4" fill="{CHAMPION}"><title>'
                f"{esc(event.action)} v{event.version} on {v.day}</title></circle>"
            )
    parts.append(_day_axis([v.day for v in dash.volume], left, step, height - 6))
    parts.append("</svg>")
    legend = (
        f'<div class="legend muted"><span style="background:{SCORED}"></span>scored'
        f'<span style="background:{REJECTED}"></span>rejected'
        f'<span style="background:none;border-left:2px dashed {RETRAIN}"></span>retrain decided'
        f'<span style="background:{CHAMPION};border-radius:5px"></span>champion changed</div>'
    )
    return "".join(parts) + legend


def realized_svg(dash: Dashboard) -> str:
    """Delayed-label ROC AUC per labelled day, against the serving version's training AUC."""
    if not dash.realized:
        return '<p class="muted" id="realized-empty">No labels yet: realized ROC AUC appears once labels arrive.</p>'
    left, top, plot_h = 50, 10, 150
    points = list(dash.realized)
    step = max(16.0, min(48.0, 720 / len(points)))
    width, height = left + step * len(points) + 10, top + plot_h + 26
    values = [p.roc_auc for p in points] + [p.reference_auc for p in points if p.reference_auc is not None]
    low, high = max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.05)
    span = (high - low) or 1.0

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / span)

    parts = [
        f'<svg id="realized-chart" role="img" aria-label="Realized ROC AUC per labelled day" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left - 4}" y="{y(high) + 8:.1f}" text-anchor="end">{high:.2f}</text>',
        f'<text x="{left - 4}" y="{y(low):.1f}" text-anchor="end">{low:.2f}</text>',
    ]
    refs = [(j, p.reference_auc) for j, p in enumerate(points) if p.reference_auc is not None]
    for j, ref in refs:
        x = left + j * step
        parts.append(
            f'<line class="reference-auc" x1="{x:.1f}" y1="{y(ref):.1f}" x2="{x + step:.1f}" y2="{y(ref):.1f}" '
            f'stroke="#9e9e9e" stroke-dasharray="3 2"><title>training ROC AUC {fmt_auc(ref)}</title></line>'
        )
    coords = [(left + (j + 0.5) * step, y(p.roc_auc)) for j, p in enumerate(points)]
    if len(coords) > 1:
        parts.append(
            '<polyline points="'
            + " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
            + f'" fill="none" stroke="{SCORED}" stroke-width="1.5"/>'
        )
    for (x, yy), p in zip(coords, points, strict=True):
        parts.append(
            f'<circle class="auc-point" data-day="{p.label_day}" data-auc="{fmt_auc(p.roc_auc)}" cx="{x:.1f}" '
            f'cy="{yy:.1f}" r="3.5" fill="{SCORED}"><title>{p.label_day} (labels on {p.day}): ROC AUC '
            f"{fmt_auc(p.roc_auc)} on {p.rows} rows, v{p.model_version}</title></circle>"
        )
    parts.append(_day_axis([p.label_day for p in points], left, step, height - 6))
    parts.append("</svg>")
    return "".join(parts)


def timeline_svg(dash: Dashboard) -> str:
    """Ledger events on a time axis, coloured by action, labelled with the version."""
    events = list(dash.timeline)
    if not events:
        return '<p class="muted" id="timeline-empty">No gate decisions yet.</p>'
    left, width, height = 60, 680, 70
    t0, t1 = events[0].time.timestamp(), events[-1].time.timestamp()
    span = (t1 - t0) or 1.0
    parts = [
        f'<svg id="timeline-chart" role="img" aria-label="Gate decisions over time" width="{width + 2 * left}" '
        f'height="{height}" viewBox="0 0 {width + 2 * left} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="35" x2="{left + width}" y2="35" stroke="#9e9e9e"/>',
    ]
    for i, e in enumerate(events):
        x = left + (width * (e.time.timestamp() - t0) / span if len(events) > 1 else width / 2)
        color = ACTION_COLORS.get(e.action, "#424242")
        label_y = 24 if i % 2 == 0 else 58
        parts.append(
            f'<g class="timeline-event" data-action="{esc(e.action)}" data-version="{e.version}">'
            f'<circle cx="{x:.1f}" cy="35" r="6" fill="{color}"><title>{e.time:%Y-%m-%d %H:%M} {esc(e.action)} '
            f"v{e.version}: {esc(e.summary)}</title></circle>"
            f'<text x="{x:.1f}" y="{label_y}" text-anchor="middle">{esc(e.action)} v{e.version}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def model_html(
    dash: Dashboard, *, mlflow_url: str | None = None, report_base: str = "../reports", days: int | None = None
) -> str:
    """The dashboard page of one model (``days``: the window shown, for the range links)."""
    ranges = " · ".join(
        f"<b>{label}</b>" if days == n else f'<a href="?days={n}">{label}</a>'
        for n, label in ((30, "30 days"), (90, "90 days"), (365, "1 year"), (0, "all"))
    )
    sections = [
        f'<p class="muted"><a href="../models">all models</a>{" · " + ranges if days is not None else ""}</p>',
        f'<h1 id="model-name">{esc(dash.model)}</h1>',
    ]
    if dash.registry_error:
        sections.append(f'<p class="err" id="registry-error">{esc(dash.registry_error)}</p>')
    sections.append(
        '<div class="cards">'
        + _version_card("champion", dash.champion, mlflow_url, dash.model)
        + _version_card("challenger", dash.challenger, mlflow_url, dash.model)
        + f'<div class="card" id="totals"><h3>Scoring</h3><div class="big">{dash.total_rows_scored}</div>'
        f"<div>rows scored over {len(dash.volume)} days</div><div>{dash.total_rows_rejected} rejected</div>"
        f"<div>retrain decisions: {len(dash.retrain_days)}</div></div></div>"
    )

    sections.append("<h2>Versions and gate decisions</h2>")
    sections.append(timeline_svg(dash))
    ledger_rows = [
        (
            esc(f"{e.time:%Y-%m-%d %H:%M}"),
            f'<b style="color:{ACTION_COLORS.get(e.action, "#424242")}">{esc(e.action)}</b>',
            esc(f"v{e.version}" if e.version is not None else ""),
            esc(f"v{e.previous_version}" if e.previous_version is not None else ""),
            esc(e.approver or ""),
            esc(e.reason or ""),
            esc(e.summary),
        )
        for e in reversed(dash.timeline)
    ]
    if ledger_rows:
        sections.append(
            _table(
                ["time (UTC)", "action", "version", "previous", "approved by", "reason", "summary"],
                ledger_rows,
                table_id="ledger-table",
            )
        )
    if dash.versions:
        sections.append(
            _table(
                ["version", "aliases", "created (UTC)", "estimator", "data window", "ROC AUC", "gate", "trigger"],
                [
                    (
                        f"v{v.version}",
                        esc(", ".join(v.aliases)),
                        esc(f"{v.created:%Y-%m-%d %H:%M}" if v.created else ""),
                        esc(v.estimator or ""),
                        esc(v.data_window or ""),
                        fmt_auc(v.roc_auc),
                        esc(v.gate or "pending"),
                        esc(v.reason or ""),
                    )
                    for v in dash.versions
                ],
                table_id="versions-table",
                numeric={5},
            )
        )

    sections.append("<h2>Drift: PSI per feature</h2>")
    sections.append(psi_heatmap_svg(dash))
    sections.append(psi_score_svg(dash))
    if dash.drift:
        rows = [
            (
                esc(d.day),
                esc(f"v{d.model_version}" if d.model_version is not None else ""),
                fmt_psi(d.score),
                esc(d.status),
                f'<b style="color:{RETRAIN}">retrain</b>' if d.verdict == "retrain" else esc(d.verdict),
                esc(", ".join(d.top_features)),
                f'<a href="{report_base}/{esc(dash.model)}/drift/ds={d.day}.html">report</a>',
            )
            for d in reversed(dash.drift)
        ]
        sections.append(
            _table(
                ["day", "model", "score (max PSI)", "status", "verdict", "top features", "Evidently"],
                rows,
                table_id="drift-table",
                numeric={2},
            )
        )
        feature_rows = [(esc(d.day), *(fmt_psi(d.psi.get(f)) for f in dash.features)) for d in reversed(dash.drift)]
        sections.append(
            "<details><summary>PSI of every feature and day</summary>"
            + _table(
                ["day", *dash.features],
                feature_rows,
                table_id="psi-table",
                numeric=set(range(1, 1 + len(dash.features))),
            )
            + "</details>"
        )

    sections.append("<h2>Daily prediction volume and rejects</h2>")
    sections.append(volume_svg(dash))
    if dash.volume:
        sections.append(
            _table(
                ["day", "rows in", "scored", "rejected", "model", "reject reasons"],
                [
                    (
                        esc(v.day),
                        str(v.rows_in),
                        str(v.rows_scored),
                        str(v.rows_rejected),
                        esc(f"v{v.model_version}" if v.model_version is not None else ""),
                        esc(", ".join(f"{k}: {n}" for k, n in sorted(v.reject_reasons.items()))),
                    )
                    for v in reversed(dash.volume)
                ],
                table_id="volume-table",
                numeric={1, 2, 3},
            )
        )

    sections.append("<h2>Realized performance (delayed labels)</h2>")
    sections.append(realized_svg(dash))
    if dash.realized:
        sections.append(
            _table(
                ["labelled day", "labels arrived", "ROC AUC", "training ROC AUC", "rows", "model"],
                [
                    (
                        esc(p.label_day),
                        esc(p.day),
                        fmt_auc(p.roc_auc),
                        fmt_auc(p.reference_auc),
                        str(p.rows),
                        esc(f"v{p.model_version}" if p.model_version is not None else ""),
                    )
                    for p in reversed(dash.realized)
                ],
                table_id="realized-table",
                numeric={2, 3, 4},
            )
        )
    return page(f"airloop · {dash.model}", "".join(sections))
