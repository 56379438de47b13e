"""The flights lake and the two small models the scoring and reason-code tests share: days 1-7 of
2013 landed (labels two days late), days 1-5 validated, a logistic regression and a
HistGradientBoosting pipeline trained on days 1-4."""

from __future__ import annotations

from datetime import date

import pandas as pd
from sklearn.pipeline import Pipeline

from include.datasets.ingest import land_day
from include.lake import Lake, Zone
from include.model_io import prepare_features
from include.spec import get_spec
from include.training.onnx_export import build_pipeline

SPEC = get_spec("flights")
NUMERIC = SPEC.dataset.features.numeric
CATEGORICAL = SPEC.dataset.features.categorical
KEY = "flight_id"
TRAIN_DAYS = [date(2013, 1, d) for d in (1, 2, 3, 4)]
SCORE_DAY = date(2013, 1, 5)


def land_and_train(lake: Lake) -> tuple[pd.DataFrame, Pipeline, Pipeline]:
    """Land and validate the days into ``lake``; (the labelled training rows, logistic
    regression, HistGradientBoosting), both fitted on those rows with seed 42."""
    for day in range(1, 8):  # labels arrive two days late: landing 1..7 labels 1..5
        land_day(SPEC, lake, date(2013, 1, day))
    for ds in [*TRAIN_DAYS, SCORE_DAY]:
        lake.publish_copy(lake.partition_file(Zone.LANDING, SPEC.name, ds), Zone.VALIDATED, SPEC.name, ds)
    frames = []
    for ds in TRAIN_DAYS:
        features = lake.read_table(Zone.VALIDATED, SPEC.name, ds).to_pandas()
        labels = lake.read_table(Zone.LABELS, SPEC.name, ds).to_pandas()
        frames.append(features.merge(labels, on=KEY))
    train = pd.concat(frames, ignore_index=True)
    x, y = prepare_features(train, NUMERIC, CATEGORICAL), train["delayed"].to_numpy()
    lr = build_pipeline("logistic_regression", NUMERIC, CATEGORICAL, {}, 42).fit(x, y)
    hgb = build_pipeline("hist_gradient_boosting", NUMERIC, CATEGORICAL, {}, 42).fit(x, y)
    return train, lr, hgb
