"""Fairness over time: the gate's disparities on realized labels, per labelled day and pooled over
a window of labelled days (docs/fairness.md#over-time).

For a spec with ``gate.fairness`` the monitor joins each labelled day's predictions with its
labels and with the sensitive columns of its validated partition (on the key columns), keeps the
rows the serving version scored, and measures them with
:func:`include.registry.fairness.measure_fairness`: the same per-group figures (rows, selection
rate, TPR, FPR, calibration gap), the same disparities and the gate's bootstrap, with
:data:`MONITOR_BOOTSTRAP` replicates. It does so on the labelled day alone (what the dashboard
charts day by day) and on the window: the rows of the last ``gate.fairness.window_days``
labelled days (default ``gate.evaluation_days``) pooled.

Only the window is judged. A disparity the spec limits whose window interval lies past the limit
on its favourable bound (:meth:`~include.registry.fairness.Disparity.breaks`, as the gate judges
a challenger) is a breach; the decision engine turns breaches into the ``fairness_breach``
signal. One bad day among good ones moves the pooled rows little and the interval less; a window
holding fewer than a majority of its days (after a promotion, or with days missing) is reported,
not judged. Groups under ``min_group_rows`` in the pooled rows are listed, not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from include.registry.fairness import HIGHER_IS_FAIRER, Disparity
from include.reports.format import jsonable

if TYPE_CHECKING:
    import pandas as pd

    from include.lake import Lake
    from include.registry.fairness import FairnessEvaluation
    from include.spec import FairnessSpec, ModelSpec

MONITOR_BOOTSTRAP = 100
"""Bootstrap replicates of each day's and window's disparities (the gate's default is 200)."""


def window_days(spec: ModelSpec) -> int:
    """Labelled days pooled in the judged window: ``gate.fairness.window_days``, else the gate's
    ``evaluation_days`` (the window the gate judged the champion on when it promoted it)."""
    policy = spec.gate.fairness
    return int(policy.window_days if policy is not None and policy.window_days else spec.gate.evaluation_days)


def min_window_days(days: int) -> int:
    """Labelled days a window needs to be judged: a majority of its ``days``."""
    return days // 2 + 1


@dataclass(frozen=True)
class FairnessBreach(Disparity):
    """One limited disparity of the window past its ``limit`` on its favourable bound."""

    limit: float

    @property
    def words(self) -> str:
        """``equalized_odds_difference on origin 0.51 [0.46, 0.55] (group EWR: TPR ...) over 0.20``."""
        from include.registry.gate import _disparity_words
        from include.reports.format import fmt_number

        side = "under" if self.name in HIGHER_IS_FAIRER else "over"
        return f"{_disparity_words(self)} {side} {fmt_number(self.limit)}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FairnessBreach:
        numbers = ("value", "lower", "upper", "limit", "low_value", "high_value")
        values: dict[str, Any] = {k: data.get(k) for k in cls.__dataclass_fields__}
        for key in numbers:
            values[key] = math.nan if values[key] is None else float(values[key])
        return cls(**values)


@dataclass(frozen=True)
class FairnessWatch:
    """What the decision engine reads of a day's ``fairness`` record entry.

    ``judged``: the window held enough labelled days to be judged; ``breaches``: its disparities
    past their limits (worst first); ``worst``: the judged bound and limit of the disparity
    closest to (or furthest past) its limit, for the signal's value; ``retrain``:
    ``gate.fairness.retrain_on_breach``; ``label_day``: the newest labelled day in the window."""

    judged: bool
    breaches: tuple[FairnessBreach, ...]
    retrain: bool
    text: str
    label_day: str | None = None
    worst: tuple[float, float] | None = None

    @classmethod
    def from_record(cls, entry: Mapping[str, Any] | None, retrain: bool) -> FairnessWatch | None:
        """From the ``fairness`` entry of a drift record (``None``: the spec has no fairness)."""
        if entry is None:
            return None
        breaches = tuple(FairnessBreach.from_dict(b) for b in entry.get("breaches") or ())
        worst = entry.get("worst")
        return cls(
            judged=bool(entry.get("judged")),
            breaches=breaches,
            retrain=retrain,
            text=str(entry.get("text") or ""),
            label_day=entry.get("label_day"),
            worst=None if not worst else (float(worst["judged"]), float(worst["limit"])),
        )


# --------------------------------------------------------------------------- measuring
def measure_rows(
    policy: FairnessSpec, rows: pd.DataFrame, target: str, threshold: float, n_boot: int, seed: int
) -> FairnessEvaluation:
    """The gate's figures (:func:`~include.registry.fairness.measure_fairness`) of the scored and
    labelled ``rows`` (``score``, ``target`` and each sensitive column)."""
    from include.registry.fairness import measure_fairness

    sensitive = {c: rows[c].to_numpy() for c in policy.sensitive}
    labels = rows[target].to_numpy().astype(int)
    report = measure_fairness(policy, sensitive, labels, rows["score"].to_numpy(), None, threshold, n_boot, seed)
    return report.challenger


def _figures(evaluation: FairnessEvaluation, limits: Mapping[str, float], rows: int) -> dict[str, Any]:
    """A day's or window's entry: its rows, per-group figures, disparities (with the limit when
    set) and the groups too small to judge."""
    disparities = [{**asdict(d), "limit": limits.get(d.name)} for d in evaluation.disparities]
    too_small = [{"column": g.column, "group": g.group, "rows": g.rows} for g in evaluation.too_small()]
    return {
        "rows": rows,
        "groups": [asdict(g) for g in evaluation.groups],
        "disparities": disparities,
        "too_small": too_small,
    }


def _breaches(evaluation: FairnessEvaluation, limits: Mapping[str, float]) -> list[FairnessBreach]:
    out = []
    for d in evaluation.disparities:
        limit = limits.get(d.name)
        if limit is not None and d.breaks(limit):
            figures = {k: v for k, v in asdict(d).items()}
            out.append(FairnessBreach(**figures, limit=float(limit)))
    return sorted(out, key=lambda b: -abs(b.judged - b.limit))


def _worst(evaluation: FairnessEvaluation, limits: Mapping[str, float]) -> dict[str, float] | None:
    """The limited disparity whose judged bound is furthest toward (or past) its limit."""
    best: tuple[float, float, float] | None = None
    for d in evaluation.disparities:
        limit = limits.get(d.name)
        if limit is None or not math.isfinite(d.judged):
            continue
        margin = limit - d.judged if d.name == "demographic_parity_ratio" else d.judged - limit
        if best is None or margin > best[0]:
            best = (margin, d.judged, limit)
    return None if best is None else {"judged": best[1], "limit": best[2]}


def fairness_entry(
    policy: FairnessSpec,
    day_rows: pd.DataFrame | None,
    window_rows: pd.DataFrame,
    window_label_days: Sequence[str],
    *,
    target: str,
    threshold: float,
    seed: int,
    window: int,
    label_day: str,
    version: int,
    n_boot: int = MONITOR_BOOTSTRAP,
) -> dict[str, Any]:
    """The ``fairness`` entry of a day's record: the labelled day's figures (``day``), the
    window's (``window``), the window's ``breaches`` and whether it was ``judged``, and a
    ``text`` the verdict quotes. ``window_rows`` pools the rows of ``window_label_days``."""
    limits = policy.limits()
    needed = min_window_days(window)
    entry: dict[str, Any] = {
        "label_day": label_day,
        "model_version": version,
        "window_days": window,
        "window_label_days": list(window_label_days),
        "limits": limits,
        "min_group_rows": policy.min_group_rows,
        "bootstrap_samples": n_boot,
        "threshold": threshold,
        "day": None,
        "window": None,
        "judged": False,
        "breaches": [],
        "worst": None,
    }
    if day_rows is not None and len(day_rows) and day_rows[target].nunique() == 2:
        day = measure_rows(policy, day_rows, target, threshold, n_boot, seed)
        entry["day"] = _figures(day, limits, len(day_rows))
    scope = f"the {len(window_label_days)} labelled days {_span(window_label_days)} of v{version}"
    if len(window_rows) == 0 or window_rows[target].nunique() < 2:
        entry["text"] = f"fairness not measured: no labelled rows of both classes from v{version} in the window"
        return jsonable(entry)
    evaluation = measure_rows(policy, window_rows, target, threshold, n_boot, seed)
    entry["window"] = _figures(evaluation, limits, len(window_rows))
    small = evaluation.too_small()
    small_words = (
        "; too small to judge (< min_group_rows {:,}): {}".format(
            policy.min_group_rows, ", ".join(f"{g.column}={g.group} ({g.rows:,} rows)" for g in small)
        )
        if small
        else ""
    )
    if len(window_label_days) < needed:
        entry["text"] = (
            f"fairness reported, not judged: {scope}, {needed} of {window} needed to judge a window{small_words}"
        )
        return jsonable(entry)
    if not limits:
        entry["text"] = f"fairness measured on {scope} ({len(window_rows):,} rows); no limit set{small_words}"
        return jsonable(entry)
    breaches = _breaches(evaluation, limits)
    entry["judged"] = True
    entry["breaches"] = [asdict(b) for b in breaches]
    entry["worst"] = _worst(evaluation, limits)
    if breaches:
        entry["text"] = (
            f"fairness breach on {scope} ({len(window_rows):,} rows): "
            + "; ".join(b.words for b in breaches)
            + small_words
        )
    else:
        measured = [d for d in evaluation.disparities if d.name in limits]
        entry["text"] = (
            f"fairness within the limits on {scope} ({len(window_rows):,} rows)"
            if measured
            else f"fairness not judged on {scope}: no column has two groups large enough"
        ) + small_words
    return jsonable(entry)


def _span(days: Sequence[str]) -> str:
    if not days:
        return "(none)"
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


# --------------------------------------------------------------------------- reading the lake
def labelled_rows(lake: Lake, spec: ModelSpec, label_day: date, columns: Sequence[str] = ()) -> pd.DataFrame | None:
    """The predictions of ``label_day`` joined with its labels (inner, on the key columns) and
    with ``columns`` of its validated partition; ``None`` when a partition is missing."""
    from include.lake import Zone

    keys = spec.dataset.key_columns
    if not (
        lake.has_partition(Zone.LABELS, spec.name, label_day)
        and lake.has_partition(Zone.PREDICTIONS, spec.name, label_day)
    ):
        return None
    scored = lake.read_table(
        Zone.PREDICTIONS, spec.name, label_day, columns=[*keys, "score", "model_version"]
    ).to_pandas()
    labels = lake.read_table(Zone.LABELS, spec.name, label_day).to_pandas()
    joined = scored.merge(labels, on=keys, how="inner")
    extra = [c for c in columns if c not in joined.columns]
    if extra:
        if not lake.has_partition(Zone.VALIDATED, spec.name, label_day):
            return None
        validated = lake.read_table(Zone.VALIDATED, spec.name, label_day, columns=[*keys, *extra]).to_pandas()
        joined = joined.merge(validated, on=keys, how="inner")
    return joined


def monitor_fairness(lake: Lake, spec: ModelSpec, ds: date, version: int) -> dict[str, Any] | None:
    """The ``fairness`` entry of day ``ds`` (labels of ``ds - label_delay_days``) for the rows
    ``version`` scored; ``None`` for a spec without ``gate.fairness``."""
    import pandas as pd

    policy = spec.gate.fairness
    if policy is None:
        return None
    label_day = ds - timedelta(days=spec.dataset.label_delay_days)
    window = window_days(spec)
    frames: list[pd.DataFrame] = []
    days: list[str] = []
    day_rows: pd.DataFrame | None = None
    for back in range(window - 1, -1, -1):
        day = label_day - timedelta(days=back)
        rows = labelled_rows(lake, spec, day, policy.sensitive)
        if rows is None:
            continue
        rows = rows[rows["model_version"] == version]
        if back == 0:
            day_rows = rows
        if len(rows):
            frames.append(rows)
            days.append(day.isoformat())
    pooled = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["score", spec.dataset.target.name])
    )
    return fairness_entry(
        policy,
        day_rows,
        pooled,
        days,
        target=spec.dataset.target.name,
        threshold=spec.training.threshold,
        seed=spec.training.seed,
        window=window,
        label_day=label_day.isoformat(),
        version=version,
    )
