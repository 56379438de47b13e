"""The names every layer shares, declared once: estimators, gate modes, retraining policies,
registry aliases, MLflow tag names and artifact paths.

The spec (pydantic ``Literal`` fields), the DAG Params, the CLI choices, the docs test and the
code that reads and writes MLflow all take them from here. Constants only: no imports beyond
``typing``, so DAG files and every layer may import this module.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Estimator = Literal["hist_gradient_boosting", "logistic_regression", "random_forest"]
ESTIMATORS: tuple[Estimator, ...] = get_args(Estimator)
ESTIMATOR_TITLES: dict[Estimator, str] = {
    "hist_gradient_boosting": "Histogram gradient boosting",
    "logistic_regression": "Logistic regression",
    "random_forest": "Random forest",
}
TREE_ESTIMATORS: frozenset[Estimator] = frozenset({"hist_gradient_boosting", "random_forest"})

GateMode = Literal["enabled", "dry_run", "disabled"]
GATE_MODES: tuple[GateMode, ...] = get_args(GateMode)

Policy = Literal["drift", "calendar", "frozen"]
"""How ``airloop replay`` retrains: on drift decisions, every ``calendar_days``, or never."""
POLICIES: tuple[Policy, ...] = get_args(Policy)
ORACLE: Final = "oracle"
"""Not a policy a loop can follow: a replay retrains exactly on given days (the true break days a
drill injected), the yardstick ``airloop drill`` measures the policies by."""

# ``pending``: the gate waits for the challenger's clean shadow days or post-break labels; not a rejection.
# ``superseded``: a newer challenger replaced one that waited for approval; not a rejection either.
GateAction = Literal[
    "promote", "reject", "dry_run", "pending", "rollback", "approval_rejected", "superseded", "breaker_reset"
]
"""What a gate, a rollback or a human reset of the breaker did, as the ledger records it."""
NO_DECISION_IN_TIME: Final = "no decision in time"
"""The reason an approval that nobody answered within ``gate.approval_timeout`` records."""
GATE_ACTIONS: tuple[GateAction, ...] = get_args(GateAction)
GATE_OUTCOMES: tuple[GateAction, ...] = ("promote", "reject", "pending", "dry_run", "approval_rejected", "superseded")
"""The actions that end one gating of a version: its newest one says where the gate left it."""

AlertKind = Literal[
    "contract_failure",
    "anomalous_partition",
    "drift_warn",
    "drift_retrain",
    "performance_breach",
    "fairness_breach",
    "gate_reject",
    "promotion",
    "approval_needed",
    "approval_expired",
    "breaker_open",
    "breaker_half_open",
    "breaker_reset",
    "rollback",
    "task_failure",
]
"""What an alert is about (``include.alerts``); each has its section in docs/operations.md, whose
anchor is the kind with ``-`` for ``_`` (``#drift-retrain``), and the spec's ``alerts.channels``
subscribe to them by these names."""
ALERT_KINDS: tuple[AlertKind, ...] = get_args(AlertKind)

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"

# Artifacts of a training run (paths inside the MLflow run).
ONNX_ARTIFACT: Final = "candidate/model.onnx"
PROFILE_ARTIFACT: Final = "reference_profile.json"
SLICES_ARTIFACT: Final = "slice_metrics.json"
IMPORTANCE_ARTIFACT: Final = "plots/feature_importance.png"
CALIBRATION_ARTIFACT: Final = "plots/calibration.png"
IMPORTANCE_DATA_ARTIFACT: Final = "plots/feature_importance.json"
"""The figures of :data:`IMPORTANCE_ARTIFACT`: mean, std and every repeat per column (the model card reads it)."""
CALIBRATION_DATA_ARTIFACT: Final = "plots/calibration.json"
"""The figures of :data:`CALIBRATION_ARTIFACT`: per quantile bin, mean predicted, observed rate and rows."""
MODEL_ARTIFACT_NAME: Final = "model"
"""The logged ONNX model's name on the run (``models:/`` URIs point at it)."""


class Tag:
    """MLflow tag names (runs, model versions, registered models, experiments)."""

    # who ran it: set from the Airflow task context
    STEP: Final = "airloop.step"
    DAG_ID: Final = "airloop.dag_id"
    DAG_RUN_ID: Final = "airloop.dag_run_id"
    LOGICAL_DATE: Final = "airloop.logical_date"
    CODE_COMMIT: Final = "airloop.code_commit"
    # the training run and the version registered from it
    MODEL: Final = "airloop.model"
    OWNER: Final = "airloop.owner"
    ESTIMATOR: Final = "airloop.estimator"
    DATA_WINDOW: Final = "airloop.data_window"
    DATA_HASH: Final = "airloop.data_hash"
    SPEC_HASH: Final = "airloop.spec_hash"
    REASON: Final = "airloop.reason"
    TRIGGER_REASON: Final = "airloop.trigger_reason"
    SEED: Final = "airloop.seed"
    TRIAL: Final = "airloop.trial"
    ERROR: Final = "airloop.error"
    PARITY: Final = "airloop.parity"
    TRAIN_END: Final = "airloop.train_end"
    HOLDOUT_DAYS: Final = "airloop.holdout_days"
    DRIFT_DECISION_IDS: Final = "airloop.drift_decision_ids"
    TRAINING_RUN_ID: Final = "airloop.training_run_id"
    ONNX_SIZE_BYTES: Final = "airloop.onnx_size_bytes"
    REGISTERED_VERSION: Final = "airloop.registered_version"
    # the gate, approval and rollback on a version
    GATE: Final = "airloop.gate"
    GATE_DECISION_ID: Final = "airloop.gate_decision_id"
    GATE_REPORT: Final = "airloop.gate_report"
    EVALUATION_DAYS: Final = "airloop.evaluation_days"
    GAIN_VS_CHAMPION: Final = "airloop.gain_vs_champion"
    PROMOTED_AT: Final = "airloop.promoted_at"
    PROMOTED_BY_DAG_RUN: Final = "airloop.promoted_by_dag_run"
    PREVIOUS_CHAMPION: Final = "airloop.previous_champion"
    APPROVED_BY: Final = "airloop.approved_by"
    REJECTED_BY: Final = "airloop.rejected_by"
    REJECT_REASON: Final = "airloop.reject_reason"
    SUPERSEDED_BY: Final = "airloop.superseded_by"
    DEMOTED_AT: Final = "airloop.demoted_at"
    REPLACED_BY: Final = "airloop.replaced_by"
    RESTORED_AT: Final = "airloop.restored_at"
    RESTORE_REASON: Final = "airloop.restore_reason"
    ROLLED_BACK_AT: Final = "airloop.rolled_back_at"
    ROLLBACK_REASON: Final = "airloop.rollback_reason"
    # a retrain answering a performance break (include/training/break_window.py)
    BREAK_DAY: Final = "airloop.break_day"
    TRIGGER: Final = "airloop.trigger"
    TRAINING_RULE: Final = "airloop.training_rule"
    TRAINING_RULE_REASON: Final = "airloop.training_rule_reason"


BREAK_TRIGGERS: Final = ("performance_drop", "breach")
# ROC AUC of a coin: a model below it is in a performance breach whatever the spec's floor.
RANDOM_AUC: Final = 0.5
"""Monitor triggers that answer a break in the concept: their retrain follows the break."""

HEAVY_MODULES: Final = (
    "pandas",
    "numpy",
    "sklearn",
    "mlflow",
    "great_expectations",
    "evidently",
    "onnxruntime",
    "onnx",
    "skl2onnx",
    "pyarrow",
    "openlineage",
    "fairlearn",
)
"""Modules DAG and plugin files must not import at module level (ruff TID253 bans the same list,
pyproject.toml ``banned-module-level-imports``): parsing a DAG file stays fast."""
