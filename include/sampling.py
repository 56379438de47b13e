"""Bounded, seeded row samples of many frames (the drift reference of a whole training window).

Shared by training (the reference profile logged with a model) and monitoring (the reference
rows of the Evidently page): neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Rows of the training window profiled for the reference: a share estimated on 100,000 uniform
# rows is within 0.32 percentage points (two standard errors) of the window's, and the flights
# features of that many rows profile in 0.74 s on this 2-core machine.
REFERENCE_MAX_ROWS = 100_000


def sample_rows(frames: Iterable[pd.DataFrame], max_rows: int = REFERENCE_MAX_ROWS, seed: int = 0) -> pd.DataFrame:
    """A uniform sample of at most ``max_rows`` rows of ``frames`` taken together, in their order.

    The frames are read one at a time (pass a generator over partitions): each row gets a seeded
    uniform random key and the ``max_rows`` smallest keys are kept (bottom-k sampling). Frames are
    buffered until they hold twice ``max_rows`` rows and then cut back to ``max_rows``, so memory
    holds at most ``2 * max_rows`` rows plus one frame, and the same frames and seed give the
    same sample.
    """
    import numpy as np
    import pandas as pd

    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    rng = np.random.default_rng(seed)
    parts: list[pd.DataFrame] = []
    keys: list[np.ndarray] = []
    buffered = 0

    def cut() -> tuple[pd.DataFrame, np.ndarray]:
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
        drawn = np.concatenate(keys)
        if len(frame) > max_rows:
            chosen = np.sort(np.argpartition(drawn, max_rows - 1)[:max_rows])
            frame, drawn = frame.iloc[chosen].reset_index(drop=True), drawn[chosen]
        return frame, drawn

    for frame in frames:
        parts.append(frame)
        keys.append(rng.random(len(frame)))
        buffered += len(frame)
        if buffered > 2 * max_rows:
            kept, drawn = cut()
            parts, keys, buffered = [kept], [drawn], len(kept)
    if not parts:
        raise ValueError("no frames to sample from")
    return cut()[0]
