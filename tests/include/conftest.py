"""Session fixtures shared by the training and registry tests: the flights training window and
the models trained on it, trained once per session instead of once per module.

The trainings write to the session's MLflow server; tests read them and may register them
(which adds versions, aliases and a run tag) but never change what was trained.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from include.lake import Lake
from include.model_io import TrainResult
from include.spec import get_spec
from include.training.data import TrainingData, assemble_training_data
from include.training.train import train_model
from tests.flights_model import BUDGET, END, HOLDOUT, REASON, TAGS, WINDOW


@pytest.fixture(scope="session")
def flights_data(flights_lake: Path) -> TrainingData:
    """The 14-day flights window ending 2013-01-25 (holdout: its last 3 labelled days)."""
    return assemble_training_data(
        get_spec("flights"), Lake(flights_lake.as_uri()), END, window_days=WINDOW, holdout_days=HOLDOUT
    )


@pytest.fixture(scope="session")
def flights_hgb(flights_data: TrainingData, mlflow_server: str) -> TrainResult:
    """The spec's estimator, searched with :data:`BUDGET` trials and tracked in ``mlflow_server``."""
    spec = get_spec("flights")
    return train_model(spec, flights_data, search_budget=BUDGET, tracking_uri=mlflow_server, tags=TAGS, reason=REASON)


@pytest.fixture(scope="session")
def flights_lr(flights_data: TrainingData, mlflow_server: str) -> TrainResult:
    """Logistic regression (no search) on the same window, tracked in ``mlflow_server``."""
    spec = get_spec("flights")
    return train_model(
        spec,
        flights_data,
        estimator="logistic_regression",
        search_budget=1,
        tracking_uri=mlflow_server,
        tags=TAGS,
        reason="schedule",
    )
