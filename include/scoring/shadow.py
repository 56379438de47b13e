"""Champion vs challenger on the same rows: how often they decide alike and how far apart
their scores are.

:func:`shadow_agreement` compares two aligned score arrays; :func:`shadow_partition_agreement`
reads the ``predictions`` and ``shadow`` partitions of one day, aligns them by key, and
compares them.

PSI (population stability index) of the challenger's scores against the champion's:
``sum((c_i - p_i) * ln(c_i / p_i))`` over 10 equal-frequency bins whose edges are the
champion's deciles. Tree models produce many tied scores, so deciles can coincide;
duplicate edges are dropped and PSI is computed over the distinct bins (``bins`` in the
result says how many). Epsilon rule: a bin's share is floored at ``1e-4`` on both sides
before the logarithm (an empty bin would otherwise make PSI infinite); the shares are not
renormalised, so identical distributions give exactly 0.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from include.lake import Lake, LakeError, Zone
from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

PSI_BINS = 10
PSI_EPSILON = 1e-4


def psi(expected: Any, actual: Any, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON) -> tuple[float, int]:
    """PSI of ``actual`` against ``expected`` with equal-frequency bins of ``expected``;
    returns ``(psi, number_of_distinct_bins)``."""
    import numpy as np

    reference = np.asarray(expected, dtype=np.float64)
    current = np.asarray(actual, dtype=np.float64)
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    # Bin i holds values in (edge[i-1], edge[i]]: side="left" counts a value equal to an edge below it.
    ref_counts = np.bincount(np.searchsorted(inner, reference, side="left"), minlength=len(inner) + 1)
    cur_counts = np.bincount(np.searchsorted(inner, current, side="left"), minlength=len(inner) + 1)
    ref_share = np.maximum(ref_counts / len(reference), epsilon)
    cur_share = np.maximum(cur_counts / len(current), epsilon)
    value = float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))
    return max(value, 0.0), len(inner) + 1


def shadow_agreement(champion_scores: Any, challenger_scores: Any, threshold: float) -> dict[str, Any]:
    """Compare two models' probabilities for the same rows, in the same order.

    Returns ``rows``, ``label_agreement`` (share of rows where ``score >= threshold`` agrees),
    ``label_flips``, ``mean_abs_score_diff``, ``max_abs_score_diff``, ``psi`` (challenger vs
    champion, see the module docstring), ``psi_bins``, and each side's mean score and
    positive rate. Plain Python numbers (JSON-ready).
    """
    import numpy as np

    champion = _scores(champion_scores, "champion")
    challenger = _scores(challenger_scores, "challenger")
    if len(champion) != len(challenger):
        raise ValueError(f"champion has {len(champion)} scores, challenger {len(challenger)}: rows must be aligned")
    if len(champion) == 0:
        raise ValueError("no rows to compare")
    champion_labels = champion >= threshold
    challenger_labels = challenger >= threshold
    flips = int(np.count_nonzero(champion_labels != challenger_labels))
    diff = np.abs(champion - challenger)
    value, bins = psi(champion, challenger)
    n = len(champion)
    return {
        "rows": n,
        "threshold": float(threshold),
        "label_agreement": 1.0 - flips / n,
        "label_flips": flips,
        "mean_abs_score_diff": float(diff.mean()),
        "max_abs_score_diff": float(diff.max()),
        "psi": value,
        "psi_bins": bins,
        "champion_mean_score": float(champion.mean()),
        "challenger_mean_score": float(challenger.mean()),
        "champion_positive_rate": float(champion_labels.mean()),
        "challenger_positive_rate": float(challenger_labels.mean()),
    }


def shadow_partition_agreement(
    lake: Lake,
    spec: ModelSpec,
    ds: date,
    champion_zone: Zone = Zone.PREDICTIONS,
    challenger_zone: Zone = Zone.SHADOW,
) -> dict[str, Any]:
    """:func:`shadow_agreement` of the two zones' partitions of ``ds``, rows matched by key
    (both runs score the same validated partition, so they normally align row for row; a
    key join handles any other order). Adds ``unmatched_rows``."""
    keys = list(spec.dataset.key_columns)
    champion = lake.read_table(champion_zone, spec.name, ds, columns=[*keys, "score"])
    challenger = lake.read_table(challenger_zone, spec.name, ds, columns=[*keys, "score"])
    if champion.num_rows == challenger.num_rows and all(champion.column(k).equals(challenger.column(k)) for k in keys):
        left, right = champion.column("score"), challenger.column("score")
        unmatched = 0
    else:
        joined = champion.rename_columns([*keys, "champion"]).join(
            challenger.rename_columns([*keys, "challenger"]), keys=keys, join_type="inner"
        )
        left, right = joined.column("champion"), joined.column("challenger")
        unmatched = champion.num_rows + challenger.num_rows - 2 * joined.num_rows
        log.warning("%s %s: shadow rows do not align by position; %s rows unmatched by key", spec.name, ds, unmatched)
    if len(left) == 0:
        raise LakeError(f"{spec.name} {ds}: no rows in common between {champion_zone} and {challenger_zone}")
    result = shadow_agreement(left, right, spec.training.threshold)
    result["unmatched_rows"] = unmatched
    return result


def _scores(values: Any, name: str) -> np.ndarray:
    import numpy as np

    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} scores contain NaN or inf")
    return array


def clean_shadow_days(lake: Lake, model: str, version: int) -> int:
    """Days on which the shadow step scored ``version`` beside the champion and matched every
    row (``reports/<model>/shadow/ds=D.json``); what the gate's ``shadow_days`` check counts."""
    import json

    clean = 0
    for path in lake.list_files(lake.path("reports", model, "shadow")):
        if not path.rsplit("/", 1)[-1].startswith("ds="):
            continue
        record = json.loads(lake.read_bytes(path))
        if (
            record.get("challenger_version") == version
            and record.get("rows", 0) > 0
            and not record.get("unmatched_rows")
        ):
            clean += 1
    return clean
