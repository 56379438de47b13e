"""One training job: the window ending at ``end`` -> search -> ONNX parity -> ``@challenger``.

The train operator and ``airloop replay`` both call :func:`train_challenger`, so a replayed
loop trains exactly as the scheduled one does. Airflow-free: the caller passes the lineage
tags of its run (the operator builds them from the task context).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from include.names import Tag
from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np

    from include.lake import Lake
    from include.training.break_window import BreakPlan
    from include.training.data import TrainingData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengerResult:
    """What a training job produced (JSON-able through :meth:`to_dict`)."""

    version: int
    run_id: str
    experiment_id: str
    end: date
    reason: str
    metrics: dict[str, float]
    summary: dict[str, Any]
    days_used: tuple[str, ...] = ()  # the validated days it trained and was held out on

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary,
            "version": self.version,
            "end_date": self.end.isoformat(),
            "reason": self.reason,
            "days_used": list(self.days_used),
        }


def train_challenger(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    end: date,
    *,
    reason: str,
    run_tags: dict[str, str] | None = None,
    decisions: list[str] | None = None,
    window_days: int | None = None,
    search_budget: int | None = None,
    estimator: str | None = None,
    break_day: date | None = None,
    trigger: str | None = None,
    explain: bool = True,
) -> ChallengerResult:
    """Train on the validated window ending at ``end`` and register the result as ``@challenger``.

    ``decisions`` are the drift decision ids this training answers (recorded on the version so
    a duplicate event is recognised). ``break_day`` (with ``trigger`` ``performance_drop`` or
    ``breach``, both from the drift event) makes it a training that follows a break: the days
    since the break, or recent days weighted more (:mod:`include.training.break_window`).
    Raises like :func:`include.training.train.train_model` (parity failure, unknown estimator)
    before anything is registered. ``explain``: see :func:`include.training.train.train_model`.
    """
    from include.registry.mlflow_registry import register_challenger
    from include.training.data import assemble_training_data
    from include.training.train import train_model

    window_days = window_days or spec.training.window_days
    plan = None if break_day is None else _plan_after_break(spec, lake, end, break_day, trigger, window_days)
    data = assemble_training_data(
        spec,
        lake,
        end,
        window_days=plan.window_days if plan else window_days,
        holdout_days=plan.holdout_days if plan else None,
    )
    log.info("training %s on %s..%s: %s", spec.name, data.window[0], data.window[1], data.counts)
    tags = {
        **(run_tags or {}),
        Tag.TRIGGER_REASON: reason,
        Tag.SPEC_HASH: spec.spec_hash(),
        # the promotion gate evaluates on labelled days after the last training day
        Tag.TRAIN_END: data.train_days[-1].isoformat(),
        Tag.HOLDOUT_DAYS: f"{data.holdout_days[0].isoformat()}..{data.holdout_days[-1].isoformat()}",
        Tag.DRIFT_DECISION_IDS: ",".join(decisions or []),
        **({Tag.TRIGGER: trigger} if trigger else {}),  # the gate's ledger entry names it (per-kind breaker)
        **(plan.tags() if plan else {}),
    }
    result = train_model(
        spec,
        data,
        estimator=estimator or None,
        search_budget=search_budget,
        tracking_uri=tracking_uri,
        tags=tags,
        reason=reason,
        threads=spec.training.threads,
        sample_weight=_break_weights(spec, data, plan),
        explain=explain,
    )
    version = register_challenger(result, spec, tracking_uri=tracking_uri, tags=tags)
    return ChallengerResult(
        version=int(version.version),
        run_id=result.run_id,
        experiment_id=str(result.experiment_id),
        end=end,
        reason=reason,
        metrics={k: round(float(v), 6) for k, v in result.metrics.items()},
        summary=result.to_summary(),
        days_used=tuple(d.isoformat() for d in data.days_used),
    )


def _plan_after_break(
    spec: ModelSpec, lake: Lake, end: date, break_day: date, trigger: str | None, window_days: int
) -> BreakPlan:
    from include.training.break_window import labelled_rows_since, plan_after_break

    rows = labelled_rows_since(spec, lake, break_day, end)
    plan = plan_after_break(spec.training, end, break_day, str(trigger), rows, window_days=window_days)
    log.info("%s: training after the break: %s", spec.name, plan.reason)
    return plan


def _break_weights(spec: ModelSpec, data: TrainingData, plan: BreakPlan | None) -> np.ndarray | None:
    """Row weights of ``data.train`` for a recency-weighted plan; ``None`` (unweighted) otherwise."""
    from include.training.break_window import recency_weights

    if plan is None or plan.half_life_days is None:
        return None
    times = data.train[spec.dataset.time_column]
    return recency_weights(times, data.train_days[-1], plan.half_life_days)
