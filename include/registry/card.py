"""Model cards: what a model is for, how good it is, why the gate let it through, where it came from.

One structure (:func:`card_sections`) rendered two ways: Markdown (MLflow model version
description, pull requests) and a self-contained HTML page (the report kit's ``card.html``:
inline CSS, no scripts, no external assets, so it opens offline from the lake or as an MLflow
artifact). Inputs are the value objects of :mod:`include.registry.gate` or their ``to_dict()``
forms, plus a ``lineage`` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Required, TypedDict, Unpack

from include.names import TREE_ESTIMATORS
from include.registry.gate import MIN_SLICE_ROWS, Comparison, Evaluation, GateDecision
from include.reports.format import fmt_number as _num

LINEAGE_KEYS = ("run_id", "data_hash", "code_commit", "spec_hash", "dag_id", "dag_run_id")
_METRICS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC (average precision)"),
    ("log_loss", "Log loss"),
    ("brier", "Brier score"),
    ("accuracy", "Accuracy"),
    ("precision", "Precision"),
    ("recall", "Recall"),
)

Block = tuple[str, Any]
"""("p", text) | ("ul", [text]) | ("table", (headers, rows)) | ("h3", text) | ("svg", CurveSvg) |
("bars", BarsSvg): the Markdown card leaves out the charts ("svg", "bars"), whose figures a table
beside them carries."""


class CardInputs(TypedDict, total=False):
    """Keyword arguments of :func:`card_sections`, :func:`model_card_markdown` and :func:`model_card_html`."""

    model: Required[str]
    version: Required[int | str | None]
    description: Required[str]
    training_window: Required[tuple[date | str, date | str]]
    evaluation: Required[Evaluation | Mapping[str, Any]]
    lineage: Required[Mapping[str, Any]]
    decision: GateDecision | Mapping[str, Any] | None
    champion: Evaluation | Mapping[str, Any] | None
    comparison: Comparison | Mapping[str, Any] | None
    holdout_window: tuple[date | str, date | str] | None
    estimator: str | None
    label_delay_days: int | None
    owner: str | None
    limitations: Sequence[str]
    fairness: Mapping[str, Any] | None
    importance: Mapping[str, Any] | None
    champion_importance: Mapping[str, Any] | None
    calibration: Mapping[str, Any] | None


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Evaluation | Comparison | GateDecision):
        return value.to_dict()
    return dict(value)


def card_sections(
    *,
    model: str,
    version: int | str | None,
    description: str,
    training_window: tuple[date | str, date | str],
    evaluation: Evaluation | Mapping[str, Any],
    lineage: Mapping[str, Any],
    decision: GateDecision | Mapping[str, Any] | None = None,
    champion: Evaluation | Mapping[str, Any] | None = None,
    comparison: Comparison | Mapping[str, Any] | None = None,
    holdout_window: tuple[date | str, date | str] | None = None,
    estimator: str | None = None,
    label_delay_days: int | None = None,
    owner: str | None = None,
    limitations: Sequence[str] = (),
    fairness: Mapping[str, Any] | None = None,
    importance: Mapping[str, Any] | None = None,
    champion_importance: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> list[Section]:
    """The card's content, renderer-neutral; ``fairness`` (the gate report's, a
    :class:`~include.registry.fairness.FairnessReport` as a dict) adds a section. ``importance``,
    ``champion_importance`` and ``calibration`` are the training runs' JSON artifacts
    (:mod:`include.registry.explain`); the "How the model decides" section shows what is given."""
    ev = _as_dict(evaluation) or {}
    champ = _as_dict(champion)
    dec = _as_dict(decision)
    start, end = (str(x) for x in training_window)
    return [
        _use_section(model, version, description, ev, owner),
        _data_section(start, end, holdout_window, ev),
        _metrics_section(ev, champ, _as_dict(comparison)),
        _explain_section(importance, champion_importance if champ is not None else None, calibration),
        *([_fairness_section(fairness)] if fairness else []),
        _gate_section(dec),
        _limits_section(start, end, ev, dec, estimator, label_delay_days, limitations),
        _lineage_section(lineage),
    ]


def _use_section(
    model: str, version: int | str | None, description: str, ev: Mapping[str, Any], owner: str | None
) -> Section:
    use = Section("Intended use")
    use.blocks.append(("p", description.strip() or "No description in the spec."))
    use.blocks.append(
        (
            "ul",
            [
                f"Model: {model}" + (f", version {version}" if version is not None else ""),
                *([f"Owner: {owner}"] if owner else []),
                f"Output: probability of the positive class; decisions at threshold {_num(ev.get('threshold'))}",
                "Intended for batch scoring of the same population and features it was trained on.",
            ],
        )
    )
    return use


def _data_section(
    start: str, end: str, holdout_window: tuple[date | str, date | str] | None, ev: Mapping[str, Any]
) -> Section:
    data = Section("Training data")
    items = [f"Training window: {start} to {end}"]
    if holdout_window:
        items.append(f"Holdout window: {holdout_window[0]} to {holdout_window[1]}")
    items.append(f"Holdout rows: {_num(ev.get('n'))}, positives: {_num(ev.get('positives'))}")
    data.blocks.append(("ul", items))
    return data


def _metrics_section(ev: Mapping[str, Any], champ: Mapping[str, Any] | None, comp: Mapping[str, Any] | None) -> Section:
    metrics = Section("Metrics")
    headers = ["Metric", "This model"] + (["Champion"] if champ else [])
    rows = []
    for key, label in _METRICS:
        row = [label, _num(ev.get(key))]
        if champ:
            row.append(_num(champ.get(key)))
        rows.append(row)
    metrics.blocks.append(("table", (headers, rows)))
    metrics.blocks.append(
        (
            "p",
            f"ROC AUC 95% bootstrap interval: [{_num(ev.get('roc_auc_lower'))}, {_num(ev.get('roc_auc_upper'))}] "
            f"({_num(ev.get('bootstrap_samples'))} resamples of the holdout).",
        )
    )
    if comp:
        metrics.blocks.append(
            (
                "p",
                f"Paired AUC gain over the champion: {_num(comp.get('gain'))} "
                f"(95% interval [{_num(comp.get('gain_lower'))}, {_num(comp.get('gain_upper'))}]).",
            )
        )
    metrics.blocks.append(("h3", "Metrics per slice"))
    metrics.blocks.extend(_slice_blocks(ev, champ))
    return metrics


def _slice_blocks(ev: Mapping[str, Any], champ: Mapping[str, Any] | None) -> list[Block]:
    """Per-slice ROC AUC (with the champion's and the drop when there is a champion)."""
    blocks: list[Block] = []
    champ_slices = {s["name"]: s for s in (champ or {}).get("slices", [])}
    slice_rows = []
    for s in ev.get("slices", []):
        row = [s["name"], _num(s["n"]), _num(s["positives"]), _num(s["roc_auc"])]
        if champ:
            before = champ_slices.get(s["name"])
            row += [_num(before["roc_auc"]) if before else "n/a"]
            row += [_num(before["roc_auc"] - s["roc_auc"]) if before else "n/a"]
        slice_rows.append(row)
    if slice_rows:
        slice_headers = ["Slice", "Rows", "Positives", "ROC AUC"] + (["Champion ROC AUC", "Drop"] if champ else [])
        blocks.append(("table", (slice_headers, slice_rows)))
    else:
        blocks.append(("p", "No slice was evaluated."))
    if ev.get("slices_skipped"):
        blocks.append(
            ("p", f"{ev['slices_skipped']} slice values skipped (fewer than {MIN_SLICE_ROWS} rows or one class).")
        )
    return blocks


def _explain_section(
    importance: Mapping[str, Any] | None,
    champion_importance: Mapping[str, Any] | None,
    calibration: Mapping[str, Any] | None,
) -> Section:
    """Permutation importance with its spread (and against the champion's) and the calibration curve."""
    from include.registry.explain import SHIFT_ENTER_SHARE, SHIFT_SHARE, SHIFT_TOP, importance_shift

    section = Section("How the model decides")
    section.blocks.append(("h3", "Global importance"))
    if importance and importance.get("mean"):
        section.blocks.append(
            (
                "p",
                f"Permutation importance: the ROC AUC drop when a column is shuffled, on {_num(importance.get('rows'))} "
                f"holdout rows, mean and mean ± 1 std over {_num(importance.get('repeats'))} shuffles. Share: the "
                "column's positive mean drop over the sum of them.",
            )
        )
        shifts = importance_shift(importance, champion_importance)
        headers = ["Feature", "Rank", "ROC AUC drop", "± 1 std interval", "Share"]
        if champion_importance:
            headers += ["Champion rank", "Champion drop", "Champion share", "Shift"]
        rows = []
        for f in shifts:
            row = [
                f.feature,
                _num(f.rank) if f.rank is not None else "not an input",
                _num(f.importance),
                f"[{_num(f.importance - f.std)}, {_num(f.importance + f.std)}]"
                if f.importance is not None and f.std is not None
                else "n/a",
                _num(f.share),
            ]
            if champion_importance:
                row += [
                    _num(f.champion_rank) if f.champion_rank is not None else "not an input",
                    _num(f.champion_importance),
                    _num(f.champion_share),
                    f"SHIFT: {f.reason}" if f.shifted else "",
                ]
            rows.append(row)
        section.blocks.append(("table", (headers, rows)))
        if champion_importance:
            moved = [f.feature for f in shifts if f.shifted]
            section.blocks.append(
                (
                    "p",
                    (f"Importance shifted against the champion's: {', '.join(moved)}. " if moved else "")
                    + f"A column shifts when its share changes by more than {SHIFT_SHARE:.2f}, or when it enters "
                    f"the top {SHIFT_TOP} with its share up by more than {SHIFT_ENTER_SHARE:.2f} "
                    "(docs/fairness.md#explanations).",
                )
            )
        else:
            section.blocks.append(
                ("p", "No champion importance to compare with (no champion, or its run logged none).")
            )
    else:
        section.blocks.append(("p", "Not recorded: the training run logged no permutation importance."))
    section.blocks.append(("h3", "Calibration"))
    if calibration and calibration.get("predicted"):
        section.blocks.append(
            (
                "p",
                f"Observed positive rate against mean predicted probability in {len(calibration['predicted'])} "
                f"quantile bins of {_num(calibration.get('rows'))} holdout rows; the diagonal is perfect calibration.",
            )
        )
        section.blocks.append(("svg", calibration_svg(calibration["predicted"], calibration["observed"])))
        bin_rows = calibration.get("bin_rows") or [None] * len(calibration["predicted"])
        rows = [
            [str(i + 1), _num(p), _num(o), _num(o - p), _num(n)]
            for i, (p, o, n) in enumerate(zip(calibration["predicted"], calibration["observed"], bin_rows, strict=True))
        ]
        section.blocks.append(
            ("table", (["Bin", "Mean predicted", "Observed rate", "Observed - predicted", "Rows"], rows))
        )
    else:
        section.blocks.append(("p", "Not recorded: the training run logged no calibration curve."))
    return section


@dataclass(frozen=True)
class CurveSvg:
    """An inline SVG line chart (no script): plot-area coordinates of the curve, the diagonal and the ticks."""

    width: int
    height: int
    points: list[tuple[float, float, str]]
    """(x, y, hover text) of each point."""
    line: str
    diagonal: tuple[float, float, float, float]
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    box: tuple[float, float, float, float]
    """left, top, right, bottom of the plot area."""
    x_label: str
    y_label: str
    title: str


def calibration_svg(
    predicted: Sequence[float], observed: Sequence[float], width: int = 360, height: int = 260
) -> CurveSvg:
    """Observed against predicted on a square scale from 0 to the next tenth above both maxima."""
    import math

    top = min(1.0, math.ceil(max([*predicted, *observed, 0.1]) * 10 - 1e-9) / 10)
    left, right, upper, lower = 48.0, width - 12.0, 12.0, height - 36.0

    def x(v: float) -> float:
        return round(left + (right - left) * v / top, 1)

    def y(v: float) -> float:
        return round(lower - (lower - upper) * v / top, 1)

    points = [(x(p), y(o), f"predicted {p:.3f}, observed {o:.3f}") for p, o in zip(predicted, observed, strict=True)]
    ticks = [round(top * i / 4, 3) for i in range(5)]
    return CurveSvg(
        width=width,
        height=height,
        points=points,
        line=" ".join(f"{px},{py}" for px, py, _ in points),
        diagonal=(x(0), y(0), x(top), y(top)),
        x_ticks=[(x(t), f"{t:g}") for t in ticks],
        y_ticks=[(y(t), f"{t:g}") for t in ticks],
        box=(left, upper, right, lower),
        x_label="mean predicted probability",
        y_label="observed positive rate",
        title=f"calibration: {len(points)} bins",
    )


def _fairness_section(fairness: Mapping[str, Any]) -> Section:
    """Per-group figures and disparities of this model on the gate's evaluation rows."""
    section = Section("Fairness")
    section.blocks.append(
        (
            "p",
            f"Audited by {', '.join(fairness['columns'])} on the gate's evaluation rows, predicted positive at "
            f"{_num(fairness['threshold'])}; groups under {_num(fairness['min_group_rows'])} rows are too small "
            "to judge (listed, left out of the disparities). See docs/fairness.md.",
        )
    )
    ours = fairness["challenger"]
    rows = [
        [
            f"{g['column']}={g['group']}",
            _num(g["rows"]),
            _num(g["selection_rate"]),
            _num(g["tpr"]),
            _num(g["fpr"]),
            _num(g["calibration_gap"]),
            "yes" if g["judged"] else "too small to judge",
        ]
        for g in ours["groups"]
    ]
    headers = ["Group", "Rows", "Selection rate", "TPR", "FPR", "Calibration gap", "Judged"]
    section.blocks.append(("table", (headers, rows)))
    section.blocks.append(
        (
            "bars",
            group_bars(
                [
                    (
                        f"{g['column']}={g['group']}" + ("" if g["judged"] else " (too small)"),
                        [(label, g[key]) for key, label in _GROUP_BARS],
                    )
                    for g in ours["groups"]
                ]
            ),
        )
    )
    limits = fairness.get("limits") or {}
    disparities = [
        [
            d["column"],
            d["name"],
            _num(d["value"]),
            f"[{_num(d['lower'])}, {_num(d['upper'])}]",
            _num(limits.get(d["name"])),
        ]
        for d in ours["disparities"]
    ]
    if disparities:
        section.blocks.append(("table", (["Column", "Disparity", "Value", "95% interval", "Limit"], disparities)))
    else:
        section.blocks.append(("p", "No column has two groups large enough to judge."))
    return section


_GROUP_BARS = (("selection_rate", "selection rate"), ("tpr", "TPR"), ("fpr", "FPR"))
_BAR_COLORS = ("#1565c0", "#2e7d32", "#c62828")


@dataclass(frozen=True)
class BarsSvg:
    """An inline SVG of horizontal bars on a 0..1 scale, a few per group (no script)."""

    width: int
    height: int
    left: float
    right: float
    legend: list[tuple[float, str, str]]
    """(x, color, label) of each metric."""
    groups: list[tuple[float, str]]
    """(y, label) of each group."""
    bars: list[tuple[float, float, float, str, str]]
    """(y, width, height, color, hover text) of each bar; bars start at ``left``."""
    values: list[tuple[float, float, str]]
    """(x, y, text) of each bar's value."""
    ticks: list[tuple[float, str]]
    title: str


def group_bars(groups: Sequence[tuple[str, Sequence[tuple[str, float | None]]]], width: int = 560) -> BarsSvg:
    """Per group, one bar per (metric, value); a missing value has no bar and reads n/a."""
    bar, gap, top, label_width = 9.0, 10.0, 24.0, 170.0
    left, right = label_width, width - 50.0
    bars, values, labels = [], [], []
    y = top
    for name, metrics in groups:
        labels.append((y + bar * len(metrics) / 2 + 4, name))
        for i, (metric, value) in enumerate(metrics):
            number = None if value is None else min(max(float(value), 0.0), 1.0)
            length = 0.0 if number is None else round((right - left) * number, 1)
            color = _BAR_COLORS[i % len(_BAR_COLORS)]
            bars.append((y, length, bar - 1, color, f"{name}: {metric} {_num(value)}"))
            values.append((left + length + 4, y + bar - 1, _num(value)))
            y += bar
        y += gap
    names = [metric for metric, _ in groups[0][1]] if groups else []
    legend = [(left + i * 110.0, _BAR_COLORS[i % len(_BAR_COLORS)], metric) for i, metric in enumerate(names)]
    ticks = [(round(left + (right - left) * t, 1), f"{t:g}") for t in (0, 0.25, 0.5, 0.75, 1)]
    return BarsSvg(
        width=width,
        height=int(y + 14),
        left=left,
        right=right,
        legend=legend,
        groups=labels,
        bars=bars,
        values=values,
        ticks=ticks,
        title=f"per-group rates: {len(groups)} groups",
    )


def _gate_section(dec: Mapping[str, Any] | None) -> Section:
    gate = Section("Gate results")
    if dec:
        gate.blocks.append(("p", str(dec.get("summary", ""))))
        gate.blocks.append(
            (
                "ul",
                [
                    f"Decision id: {dec.get('decision_id')}",
                    f"Mode: {dec.get('mode')}; promote: {dec.get('promote')}; would promote: {dec.get('would_promote')}",
                    f"First model: {dec.get('first_model')}; approval required: {dec.get('approval_required')}",
                ],
            )
        )
        check_rows = [
            [c["name"], _num(c["threshold"]), _num(c["observed"]), "pass" if c["passed"] else "FAIL", c["detail"]]
            for c in dec.get("checks", [])
        ]
        gate.blocks.append(("table", (["Check", "Threshold", "Observed", "Result", "Detail"], check_rows)))
    else:
        gate.blocks.append(("p", "This model has not been through the gate."))
    return gate


def _limits_section(
    start: str,
    end: str,
    ev: Mapping[str, Any],
    dec: Mapping[str, Any] | None,
    estimator: str | None,
    label_delay_days: int | None,
    limitations: Sequence[str],
) -> Section:
    limits = Section("Known limitations")
    known = [
        f"Trained on a time window ({start} to {end}) only: behaviour under other seasons, routes or "
        "populations is unknown; drift monitoring watches the live inputs for it."
    ]
    if label_delay_days:
        known.append(
            f"Labels arrive {label_delay_days} day(s) after scoring: live performance is known only with that delay."
        )
    if estimator is None or estimator in TREE_ESTIMATORS:
        figures = (dec or {}).get("figures", {})
        measured = ""
        if figures.get("mean_abs_diff") is not None:
            measured = (
                f" (measured: mean |difference| {_num(figures['mean_abs_diff'])}, "
                f"label agreement {_num(figures.get('label_agreement'))})"
            )
        known.append(
            "Served as float32 ONNX: tree models flip a few probabilities near split points, so single "
            f"rows can differ from scikit-learn{measured}; parity is judged on the mean and on label agreement."
        )
    if ev.get("slices_skipped"):
        known.append(f"{ev['slices_skipped']} slice values were too small to evaluate: quality there is unmeasured.")
    known.append(f"Figures come from one time-based holdout of {_num(ev.get('n'))} rows.")
    known.extend(limitations)
    limits.blocks.append(("ul", known))
    return limits


def _lineage_section(lineage: Mapping[str, Any]) -> Section:
    lin = Section("Lineage")
    keys = list(LINEAGE_KEYS) + [k for k in lineage if k not in LINEAGE_KEYS]
    lin.blocks.append(("table", (["Field", "Value"], [[k, str(lineage.get(k, "not recorded"))] for k in keys])))
    return lin


def _title(model: str, version: int | str | None) -> str:
    return f"Model card: {model}" + (f" v{version}" if version is not None else "")


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def model_card_markdown(**kwargs: Unpack[CardInputs]) -> str:
    """The card as Markdown; takes the keyword arguments of :func:`card_sections`."""
    lines = [f"# {_title(kwargs['model'], kwargs.get('version'))}", ""]
    for section in card_sections(**kwargs):
        lines += [f"## {section.title}", ""]
        for kind, content in section.blocks:
            if kind == "p":
                lines += [content, ""]
            elif kind == "h3":
                lines += [f"### {content}", ""]
            elif kind == "ul":
                lines += [f"- {item}" for item in content] + [""]
            elif kind == "table":
                headers, rows = content
                lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                lines.append("|" + "|".join("---" for _ in headers) + "|")
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def model_card_html(**kwargs: Unpack[CardInputs]) -> str:
    """The card as one self-contained HTML page (inline CSS, no scripts, no external assets)."""
    from include.reports.render import render

    return render("card.html", title=_title(kwargs["model"], kwargs.get("version")), sections=card_sections(**kwargs))
