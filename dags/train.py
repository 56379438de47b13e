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

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param

from airloop.assets import model_asset
from airloop.dag_defaults import form_dag, valid_specs
from airloop.operators.train import TrainModelOperator
from include.names import ESTIMATOR_TITLES, ESTIMATORS

for spec in valid_specs():
    drift = model_asset(spec.name, "drift")
    cadence = spec.training.schedule
    schedule = (
        AssetOrTimeSchedule(timetable=CronTriggerTimetable(cadence, timezone="UTC"), assets=drift) if cadence else drift
    )
    with form_dag(
        spec,
        step="train",
        description=f"Train, export to ONNX and register a {spec.name} challenger",
        schedule=schedule,
        params={
            "end_date": Param(
                None,
                type=["null", "string"],
                format="date",
                title="End of the training window",
                description="Last day of data to train on (YYYY-MM-DD). Empty: the newest validated day.",
            ),
            "window_days": Param(
                spec.training.window_days,
                type="integer",
                minimum=spec.training.holdout_days + 1,
                maximum=365,
                title="Training window (days)",
                description="Days of validated data ending at the end date; the last holdout days are held out.",
            ),
            "search_budget": Param(
                spec.training.search_budget,
                type="integer",
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
        },
        doc_md=__doc__,
    ) as dag:
        TrainModelOperator(
            task_id="train",
            model=spec.name,
            data_end="{{ params.end_date }}",
            window_days="{{ params.window_days }}",
            search_budget="{{ params.search_budget }}",
            estimator="{{ params.estimator }}",
            reason="{{ params.reason }}",
            retries=1,
        )
    globals()[dag.dag_id] = dag
