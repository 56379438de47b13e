"""A second real dataset for tests and replays: scikit-learn's bundled breast-cancer data.

569 diagnosed tumours (Wisconsin diagnostic data, shipped inside scikit-learn: no download),
given synthetic arrival times so they replay as a daily stream: a seeded shuffle, then
``ROWS_PER_DAY`` rows per day from ``START``. Features are the ten "mean" measurements,
renamed to column-safe names; ``diagnosis`` is 1 for malignant (scikit-learn codes
malignant as 0). No categorical feature: the pipeline must work with numeric features only.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

VERSION = "1"
START = datetime(2024, 1, 1)
ROWS_PER_DAY = 10
SEED = 7


def build() -> pd.DataFrame:
    """One row per tumour: ``sample_id``, ``seen_at``, ten ``mean_*`` features, ``diagnosis``."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data[[c for c in bunch.data.columns if c.startswith("mean ")]].copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["diagnosis"] = (bunch.target == 0).astype("int64")
    order = np.random.default_rng(SEED).permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(0, "sample_id", [f"bc-{i:04d}" for i in order])
    day = frame.index // ROWS_PER_DAY
    minute = (frame.index % ROWS_PER_DAY) * 60 + 480  # 08:00, 09:00, ... within the day
    frame.insert(1, "seen_at", pd.to_datetime(START) + pd.to_timedelta(day, unit="D") + pd.to_timedelta(minute, "min"))
    return frame
