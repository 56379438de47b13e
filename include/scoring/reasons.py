"""Per-row reason codes: the ``k`` features that moved each row's score most (``scoring.reason_codes``).

Method: occlusion against the version's reference. For a row ``x`` and a feature ``j``::

    contribution_j(x) = f(x) - f(x with feature j replaced by ref_j)

where ``f`` is the exported ONNX model's probability of class 1 (the ``score`` column) and
``ref_j`` is the feature's reference value from the version's reference profile
(``reference_profile.json``, :data:`include.names.PROFILE_ARTIFACT`, logged by training from the
training window; :func:`reference_values`):

* numeric features: the median (the profile's ``quantiles.p50``, over the non-null values);
* categorical features: the most frequent category (the profile's ``categories[0]``; ties go
  to the first name in sort order), :data:`include.model_io.MISSING_CATEGORY` if it has none.

A positive contribution means the row's own value of ``j`` raised its score above what a
typical value would give; ``0`` means the row already holds the reference value (or the model
ignores the feature there). The contributions are in score units (probability) and do **not**
sum to the score or to ``score - f(reference row)``: each one moves a single feature with the
others held at the row's values, so interactions are counted in every feature they involve (or
in none). They rank features for one row; they are not an additive decomposition like SHAP.

The method needs nothing but the ONNX model, so it is the same for every estimator: the model
is run on ``n_features + 1`` copies of each row (the row itself, then one copy per feature
with that feature occluded), stacked into one onnxruntime run per chunk. A stacked run holds
at most ``max_run_rows`` rows (the scoring batch size), so memory stays what plain scoring
needs; the model's score column comes from the unoccluded copy, in runs of at least
:data:`include.scoring.score.MIN_RUN_ROWS` rows, so ``score`` is the same with and without
reason codes.

The top ``k`` features of a row are sorted by ``|contribution|``, largest first; equal
magnitudes keep the spec's feature order (numeric, then categorical).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.model_io import MISSING_CATEGORY
from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    ScoreFeeds = Callable[[dict[str, np.ndarray]], np.ndarray]
    """Runs the model on feeds: the probability of class 1 per row (float32)."""

METHOD = "occlusion"
NAME_COLUMN = "reason_{rank}"
VALUE_COLUMN = "reason_{rank}_value"


class ReasonCodesError(ValueError):
    """Reason codes cannot be computed (no reference for a feature, ``k`` too large)."""


def reason_columns(k: int) -> list[str]:
    """The output columns, by rank: ``reason_1, reason_1_value, reason_2, ...``."""
    return [c for rank in range(1, k + 1) for c in (NAME_COLUMN.format(rank=rank), VALUE_COLUMN.format(rank=rank))]


def reference_values(profile: Mapping[str, Any], spec: ModelSpec) -> dict[str, float | str]:
    """The value each feature is occluded with, from a reference profile
    (:func:`include.training.profile.reference_profile`): the median of a numeric feature (NaN
    when the profile saw no value), the most frequent category of a categorical one."""
    features = spec.dataset.features
    numeric = profile.get("numeric", {})
    categorical = profile.get("categorical", {})
    missing = [c for c in features.numeric if c not in numeric] + [
        c for c in features.categorical if c not in categorical
    ]
    if missing:
        raise ReasonCodesError(f"{spec.name}: the reference profile has no entry for features {missing}")
    values: dict[str, float | str] = {}
    for col in features.numeric:
        median = (numeric[col].get("quantiles") or {}).get("p50")
        values[col] = math.nan if median is None else float(median)
    for col in features.categorical:
        categories = categorical[col].get("categories") or []
        values[col] = str(categories[0]) if categories else MISSING_CATEGORY
    return values


@dataclass(frozen=True)
class Explained:
    """One batch's scores and reason codes: ``order[i, r]`` is the index (in
    :attr:`ReasonCodes.features`) of row ``i``'s rank ``r + 1`` feature, ``values[i, r]`` its
    contribution."""

    scores: np.ndarray
    order: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class ReasonCodes:
    """What scoring needs to write ``k`` reason codes per row (see the module docstring)."""

    k: int
    features: tuple[str, ...]
    reference: Mapping[str, float | str]
    max_run_rows: int = 65536

    def __post_init__(self) -> None:
        if not 1 <= self.k <= len(self.features):
            raise ReasonCodesError(f"reason codes: k must be 1..{len(self.features)} (the features), got {self.k}")
        missing = [f for f in self.features if f not in self.reference]
        if missing:
            raise ReasonCodesError(f"reason codes: no reference value for {missing}")
        if self.max_run_rows < 1:
            raise ReasonCodesError(f"reason codes: max_run_rows must be >= 1, got {self.max_run_rows}")

    @classmethod
    def for_spec(
        cls, spec: ModelSpec, profile: Mapping[str, Any], *, k: int | None = None, max_run_rows: int | None = None
    ) -> ReasonCodes:
        """``k`` (default ``spec.scoring.reason_codes``) codes over the spec's features, occluded
        with :func:`reference_values` of ``profile``; stacked runs of at most ``max_run_rows``
        (default ``spec.scoring.batch_size``) rows."""
        return cls(
            k=spec.scoring.reason_codes if k is None else k,
            features=tuple(spec.dataset.features.all),
            reference=reference_values(profile, spec),
            max_run_rows=max_run_rows or spec.scoring.batch_size,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for the predictions' metadata: method, k and the reference values."""
        reference = {
            name: (None if isinstance(v, float) and math.isnan(v) else v) for name, v in self.reference.items()
        }
        return {"method": METHOD, "k": self.k, "features": list(self.features), "reference": reference}

    def fields(self) -> list[pa.Field]:
        import pyarrow as pa

        return [
            pa.field(name, pa.string() if i % 2 == 0 else pa.float32(), nullable=False)
            for i, name in enumerate(reason_columns(self.k))
        ]

    def contributions(self, score: ScoreFeeds, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, contributions)``: float32 ``(n,)`` and ``(n, n_features)`` for the rows of
        ``feeds`` (which must hold the features in :attr:`features` order); ``score`` runs the
        model on feeds (:func:`include.scoring.score.score_feeds` with the session)."""
        import numpy as np

        n = len(next(iter(feeds.values())))
        width = len(self.features) + 1
        chunk = max(1, self.max_run_rows // width)
        scores = np.empty(n, dtype=np.float32)
        contributions = np.empty((n, len(self.features)), dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            m = stop - start
            stacked: dict[str, np.ndarray] = {}
            for j, name in enumerate(self.features):
                block = np.tile(feeds[name][start:stop], (width, 1))
                block[(j + 1) * m : (j + 2) * m] = self.reference[name]
                stacked[name] = block
            proba = score(stacked)
            base = proba[:m]
            scores[start:stop] = base
            contributions[start:stop] = base[:, None] - proba[m:].reshape(len(self.features), m).T
        return scores, contributions

    def explain(self, score: ScoreFeeds, feeds: dict[str, np.ndarray]) -> Explained:
        """Scores and the top-``k`` features per row by ``|contribution|`` (stable: ties keep
        the feature order)."""
        import numpy as np

        scores, contributions = self.contributions(score, feeds)
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, : self.k]
        values = np.take_along_axis(contributions, order, axis=1)
        return Explained(scores=scores, order=order.astype(np.int32), values=values)

    def arrays(self, explained: Explained) -> list[pa.Array]:
        """The output columns of :meth:`fields` for one explained batch."""
        import numpy as np
        import pyarrow as pa

        names = pa.array(list(self.features), pa.string())
        out: list[pa.Array] = []
        for rank in range(self.k):
            out.append(names.take(pa.array(np.ascontiguousarray(explained.order[:, rank]))))
            out.append(pa.array(np.ascontiguousarray(explained.values[:, rank]), pa.float32()))
        return out


def reason_codes_for(spec: ModelSpec, tracking_uri: str, version: int) -> ReasonCodes | None:
    """The :class:`ReasonCodes` the spec asks for with ``version``'s reference, or ``None`` when
    ``scoring.reason_codes`` is 0 (nothing downloaded)."""
    if spec.scoring.reason_codes == 0:
        return None
    from include.model_io import load_reference_profile

    profile, _ = load_reference_profile(tracking_uri, spec.name, version)
    return ReasonCodes.for_spec(spec, profile)
