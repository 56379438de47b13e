"""How a model decides, for its card: permutation importance with its spread, compared with the
champion's, and the calibration curve, read back from the training runs' JSON artifacts.

Importance is the ROC AUC drop when a column is shuffled (``include.training.train``, on up to
5,000 holdout rows, 3 shuffles). A column's *share* is its mean drop over the sum of the
positive mean drops (a negative mean is noise and counts as 0); its *rank* orders columns by mean
drop, 1 the largest. A column's importance *shifted* against the champion's when

- its share changed by more than :data:`SHIFT_SHARE` (0.15), or
- it entered the top :data:`SHIFT_TOP` (3) ranks from below them (or was not an input of the
  champion) and its share grew by more than :data:`SHIFT_ENTER_SHARE` (0.05): two columns of
  nearly equal importance swapping ranks 3 and 4 is not a shift.

Either is a model that leans on other inputs than the one it replaces: worth a look before it
serves, never a gate check.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.names import CALIBRATION_DATA_ARTIFACT, IMPORTANCE_DATA_ARTIFACT

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from include.lake import Lake

SHIFT_SHARE = 0.15
SHIFT_TOP = 3
SHIFT_ENTER_SHARE = 0.05


@dataclass(frozen=True)
class FeatureShift:
    """One input column of the challenger or the champion: importance, share, rank, and whether it shifted."""

    feature: str
    importance: float | None
    std: float | None
    share: float
    rank: int | None
    champion_importance: float | None
    champion_share: float | None
    champion_rank: int | None
    shifted: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shares(mean: Mapping[str, float]) -> dict[str, float]:
    """Each column's positive mean drop over the sum of positive mean drops (all 0 when none is positive)."""
    positive = {c: max(float(v), 0.0) for c, v in mean.items()}
    total = sum(positive.values())
    return {c: (v / total if total > 0 else 0.0) for c, v in positive.items()}


def ranks(mean: Mapping[str, float]) -> dict[str, int]:
    """1 for the largest mean drop; ties in column-name order."""
    ordered = sorted(mean, key=lambda c: (-float(mean[c]), c))
    return {c: i + 1 for i, c in enumerate(ordered)}


def importance_shift(importance: Mapping[str, Any], champion: Mapping[str, Any] | None = None) -> list[FeatureShift]:
    """Every column of the challenger's ``importance`` (and of the champion's, when given; both
    as logged by training: ``{"mean": {...}, "std": {...}}``), ordered by the challenger's rank,
    with the shift rule of this module applied (nothing shifts without a champion)."""
    mean: Mapping[str, float] = importance.get("mean") or {}
    std: Mapping[str, float] = importance.get("std") or {}
    share, rank = shares(mean), ranks(mean)
    champ_mean: Mapping[str, float] = (champion or {}).get("mean") or {}
    champ_share, champ_rank = shares(champ_mean), ranks(champ_mean)
    rows = []
    for feature in sorted({*mean, *champ_mean}, key=lambda c: (rank.get(c, len(rank) + 1), c)):
        ours = share.get(feature, 0.0)
        theirs = champ_share.get(feature, 0.0) if champ_mean else None
        reasons = []
        if theirs is not None:
            change = ours - theirs
            if abs(change) > SHIFT_SHARE:
                reasons.append(f"share {theirs:.2f} -> {ours:.2f}")
            before = champ_rank.get(feature)
            now = rank.get(feature)
            if now is not None and now <= SHIFT_TOP and (before is None or before > SHIFT_TOP):
                if change > SHIFT_ENTER_SHARE:
                    was = f"rank {before}" if before is not None else "not an input"
                    reasons.append(f"entered the top {SHIFT_TOP} (rank {now}, was {was})")
        rows.append(
            FeatureShift(
                feature=feature,
                importance=float(mean[feature]) if feature in mean else None,
                std=float(std[feature]) if feature in std else None,
                share=ours,
                rank=rank.get(feature),
                champion_importance=float(champ_mean[feature]) if feature in champ_mean else None,
                champion_share=theirs,
                champion_rank=champ_rank.get(feature),
                shifted=bool(reasons),
                reason="; ".join(reasons),
            )
        )
    return rows


CARDS_KIND = "cards"


def importance_record_path(lake: Lake, model: str, version: int) -> str:
    """``reports/<model>/cards/v<version>.importance.json``, beside the version's card."""
    return lake.report_path(model, CARDS_KIND, f"v{version}.importance.json")


def write_importance_record(
    lake: Lake, model: str, version: int, champion_version: int | None, rows: list[FeatureShift]
) -> str:
    """The card's importance table as JSON (the dashboard's champion panel reads it)."""
    record = {
        "model": model,
        "version": version,
        "compared_with": champion_version,
        "rule": {"share": SHIFT_SHARE, "top": SHIFT_TOP, "enter_share": SHIFT_ENTER_SHARE},
        "features": [r.to_dict() for r in rows],
    }
    return lake.write_bytes(importance_record_path(lake, model, version), json.dumps(record, indent=2).encode())


def read_importance_record(lake: Lake, model: str, version: int) -> tuple[int | None, list[FeatureShift]] | None:
    """``(compared_with, rows)`` of :func:`write_importance_record`; None when the version has none
    (promoted before cards carried importance, or trained without it)."""
    path = importance_record_path(lake, model, version)
    if not lake.exists(path):
        return None
    record = json.loads(lake.read_bytes(path))
    return record.get("compared_with"), [FeatureShift(**row) for row in record["features"]]


def run_explanations(client: MlflowClient, run_id: str | None) -> dict[str, Any]:
    """``{"importance": ..., "calibration": ...}`` from a training run's JSON artifacts; a key is
    None when the run has no such artifact (trained with ``explain=False``, or before these were
    logged) or no run is given."""
    from mlflow.exceptions import MlflowException

    found: dict[str, Any] = {"importance": None, "calibration": None}
    if not run_id:
        return found
    with tempfile.TemporaryDirectory(prefix="airloop-explain-") as tmp:
        for key, artifact in (("importance", IMPORTANCE_DATA_ARTIFACT), ("calibration", CALIBRATION_DATA_ARTIFACT)):
            try:
                path = client.download_artifacts(run_id, artifact, tmp)
            except (MlflowException, OSError):
                continue
            found[key] = json.loads(Path(path).read_text())
    return found


__all__ = [
    "SHIFT_ENTER_SHARE",
    "SHIFT_SHARE",
    "SHIFT_TOP",
    "FeatureShift",
    "importance_record_path",
    "importance_shift",
    "ranks",
    "read_importance_record",
    "run_explanations",
    "shares",
    "write_importance_record",
]
