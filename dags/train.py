"""
### `<model>__train`: train, export to ONNX, prove parity, register the challenger

Trains a scikit-learn pipeline (preprocessing in a `ColumnTransformer`, so serving applies
exactly the training preprocessing) on the validated days of the training window joined with
the labels that had arrived by the window's end (never later ones), tracks everything in
MLflow, exports the model to ONNX, checks ONNX/scikit-learn parity on the holdout, and
registers the ONNX model as a new version with alias `challenger`.

* **Schedule**: the spec's calendar cadence (`training.schedule`, e.g. `@weekly`) **or** the
  model's `drift` asset (`AssetOrTimeSchedule`), and by hand with the Params below.
* **End of the window**: the `end_date` Param; else the newest partition named by the drift
  event; else the run's logical date (capped at the newest validated day); else the newest
  validated day.
* **Emits**: `<model>.challenger` with `extra = {version, run_id, metrics, end_date}`, which
  starts `<model>__promote`.
* **Fails, registering nothing**, on an ONNX parity failure, an unsupported estimator or too
  little data; the message says which.
* **Links**: *MLflow run* and *Model version* on the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param

from airloop.assets import model_asset
from airloop.dag_defaults import date_param, form_dags, int_param, param_templates
from airloop.operators.train import TrainModelOperator
from include.names import ESTIMATOR_TITLES, ESTIMATORS

if TYPE_CHECKING:
    from include.spec import ModelSpec


def schedule(spec: ModelSpec) -> Any:
    """The spec's calendar cadence or the model's drift asset, whichever comes first."""
    drift = model_asset(spec.name, "drift")
    cadence = spec.training.schedule
    return (
        AssetOrTimeSchedule(timetable=CronTriggerTimetable(cadence, timezone="UTC"), assets=drift) if cadence else drift
    )


def form(spec: ModelSpec) -> dict[str, Param]:
    """The trigger form: its defaults and bounds come from the spec."""
    return {
        "end_date": date_param(
            None,
            title="End of the training window",
            description="Last day of data to train on (YYYY-MM-DD). Empty: the newest validated day.",
            optional=True,
        ),
        "window_days": int_param(
            spec.training.window_days,
            minimum=spec.training.holdout_days + 1,
            maximum=365,
            title="Training window (days)",
            description="Days of validated data ending at the end date; the last holdout days are held out.",
        ),
        "search_budget": int_param(
            spec.training.search_budget,
            minimum=1,
            maximum=50,
            title="Hyperparameter search budget",
            description="Number of candidate configurations tried (each a nested MLflow run).",
        ),
        "estimator": Param(
            spec.training.estimator,
            type="string",
            enum=list(ESTIMATORS),
            values_display=dict(ESTIMATOR_TITLES),
            title="Estimator",
            description="Model family; all three export to ONNX with a parity check.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],  # the UI marks a Param required unless its type allows null
            maxLength=500,
            title="Reason",
            description="Why you retrain by hand; recorded on the MLflow run and model version.",
        ),
    }


for spec, dag in form_dags(
    globals(),
    step="train",
    description="Train, export to ONNX and register a {model} challenger",
    schedule=schedule,
    params=form,
):
    TrainModelOperator(task_id="train", model=spec.name, **param_templates(dag.params, end_date="data_end"), retries=1)
