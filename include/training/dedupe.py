"""Exactly one retrain per drift decision, whatever Airflow does with the asset events.

Airflow may merge several drift events into one run, replay one, or deliver one late.
Each training run records the decision ids it answered in the tag
``airloop.drift_decision_ids``; before training, the ids of the triggering events are checked
against the runs already recorded, and only unanswered ones justify a new training.
"""

from __future__ import annotations

from collections.abc import Iterable

from include.names import Tag


def answered_decisions(tracking_uri: str, model: str, decision_ids: Iterable[str]) -> set[str]:
    """The ids among ``decision_ids`` that a finished or running training run already answered."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(f"airloop-{model}")
    if experiment is None:
        return set()
    answered: set[str] = set()
    for decision in decision_ids:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{Tag.DRIFT_DECISION_IDS}` LIKE '%{decision}%' AND attributes.status != 'FAILED'",
            max_results=1,
        )
        if runs:
            answered.add(decision)
    return answered
