"""The serving contract: what a model takes, and which rows it may score.

Two checks happen before any row reaches onnxruntime, because onnxruntime itself checks
almost nothing: it scores ``inf`` as probability 1.0, and a wrong input type
fails only deep inside a run.

* :func:`check_signature` compares the ONNX model's inputs with the spec's features
  (numeric -> ``tensor(float)``, categorical -> ``tensor(string)``, one input per column,
  named after it) and raises :class:`SignatureMismatchError` naming every difference.
* :func:`check_rows` judges every row of a record batch; :func:`split_scoreable` splits the
  batch into the rows that may be scored and the rejected rows, each with a
  ``reject_reason`` (``null:<column>`` or ``nonfinite:<column>``: the first failing rule in
  the spec's feature order, numeric features first).

Why reject instead of impute: the exported pipeline *could* score a NaN (HistGradientBoosting
routes missing values, the other estimators impute a median) and a null category (it would
become ``__missing__``). The serving contract says an unscoreable row is never silently
scored: a prediction made from a value that was not there is indistinguishable, downstream,
from a real one. Such rows go to the rejects file with their reason, keys, time and all
features, so nothing is lost and they can be replayed once fixed.

Unseen categories are *not* rejected: the one-hot encoder ignores them by design
(``handle_unknown='ignore'``, identical in sklearn and ONNX); the data contract warns about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

REJECT_REASON = "reject_reason"
NUMERIC_ONNX_TYPE = "tensor(float)"
CATEGORICAL_ONNX_TYPE = "tensor(string)"
PROBABILITIES_OUTPUT = "probabilities"


class SignatureMismatchError(ValueError):
    """The ONNX model's inputs do not match the spec's features (message lists every difference)."""


class InputSchemaError(ValueError):
    """The partition to score lacks a feature column or holds it with an unusable type."""


def check_signature(session: Any, spec: ModelSpec) -> None:
    """Raise :class:`SignatureMismatchError` unless the session's inputs are exactly the spec's
    features with the right tensor types, and it has a ``probabilities`` output."""
    features = spec.dataset.features
    expected = {col: NUMERIC_ONNX_TYPE for col in features.numeric}
    expected.update({col: CATEGORICAL_ONNX_TYPE for col in features.categorical})
    actual = {i.name: i.type for i in session.get_inputs()}
    problems = []
    missing = [c for c in expected if c not in actual]
    if missing:
        problems.append(f"spec features the model does not take: {missing}")
    extra = [c for c in actual if c not in expected]
    if extra:
        problems.append(f"model inputs the spec does not provide: {extra}")
    mismatched = [
        f"{col} (model {actual[col]}, spec {'numeric' if kind == NUMERIC_ONNX_TYPE else 'categorical'} {kind})"
        for col, kind in expected.items()
        if col in actual and actual[col] != kind
    ]
    if mismatched:
        problems.append(f"type mismatches: {', '.join(mismatched)}")
    outputs = [o.name for o in session.get_outputs()]
    if PROBABILITIES_OUTPUT not in outputs:
        problems.append(f"no {PROBABILITIES_OUTPUT!r} output (outputs: {outputs})")
    if problems:
        raise SignatureMismatchError(f"model does not match spec {spec.name!r}: " + "; ".join(problems))


def check_input_schema(schema: pa.Schema, spec: ModelSpec) -> None:
    """Raise :class:`InputSchemaError` if a key, time or feature column is absent, a numeric
    feature is not a number, or a categorical feature is not a string."""
    import pyarrow as pa

    dataset = spec.dataset
    names = set(schema.names)
    absent = [c for c in (*dataset.key_columns, dataset.time_column, *dataset.features.all) if c not in names]
    problems = [f"columns missing: {absent}"] if absent else []
    for col in dataset.features.numeric:
        if col in names:
            kind = schema.field(col).type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
                problems.append(f"numeric feature {col} has type {kind}")
    for col in dataset.features.categorical:
        if col in names:
            kind = schema.field(col).type
            value = kind.value_type if pa.types.is_dictionary(kind) else kind
            if not (pa.types.is_string(value) or pa.types.is_large_string(value)):
                problems.append(f"categorical feature {col} has type {kind}, expected string")
    if problems:
        raise InputSchemaError(f"{spec.name}: cannot score this input: " + "; ".join(problems))


@dataclass(frozen=True)
class RowVerdict:
    """The contract's verdict on each row of a batch.

    ``codes[i]`` is 0 when row ``i`` may be scored, else ``k + 1`` where ``labels[k]`` is the
    first rule it failed. ``labels`` lists every rule of the spec in order, so codes mean the
    same thing in every batch.
    """

    codes: np.ndarray
    labels: tuple[str, ...]

    @property
    def rejected(self) -> int:
        import numpy as np

        return int(np.count_nonzero(self.codes))

    @property
    def scoreable(self) -> np.ndarray:
        """Boolean mask of the rows that may be scored."""
        import numpy as np

        return np.asarray(self.codes == 0)

    def reasons(self) -> pa.Array:
        """``reject_reason`` of the rejected rows only, in row order (string)."""
        import pyarrow as pa

        rejected = self.codes[self.codes != 0] - 1
        return pa.DictionaryArray.from_arrays(pa.array(rejected, pa.int16()), pa.array(self.labels, pa.string())).cast(
            pa.string()
        )

    def counts(self) -> dict[str, int]:
        """How many rows each rule rejected (rules that rejected nothing are left out)."""
        import numpy as np

        found = np.bincount(self.codes, minlength=len(self.labels) + 1)[1:]
        return {label: int(n) for label, n in zip(self.labels, found, strict=True) if n}


def rule_labels(spec: ModelSpec) -> tuple[str, ...]:
    """Every rule in the order it is applied (the first failing one names a row's reason)."""
    features = spec.dataset.features
    labels = [label for col in features.numeric for label in (f"null:{col}", f"nonfinite:{col}")]
    return (*labels, *(f"null:{col}" for col in features.categorical))


def check_rows(batch: pa.RecordBatch, spec: ModelSpec) -> RowVerdict:
    """Apply the contract to every row of ``batch`` (vectorised, pyarrow.compute + numpy).

    Rules in order: for each numeric feature (spec order) null, then non-finite; then for each
    categorical feature null. A numeric feature in ``spec.scoring.allow_missing`` may be null or
    NaN (the model handles missing values there), never +-inf. Non-finite is judged on the float32 the model receives: NaN,
    +-inf, and finite doubles beyond float32's range (the cast makes them inf without a word).
    Rules are applied last to first so that the first failing rule wins; a rule is skipped
    without building a mask when the column cannot fail it (no nulls, all finite).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    labels = rule_labels(spec)
    index = {label: k + 1 for k, label in enumerate(labels)}
    allowed = set(spec.scoring.allow_missing)
    masks: list[tuple[int, Any]] = []
    for col in spec.dataset.features.numeric:
        values = batch.column(col)
        if values.null_count and col not in allowed:
            masks.append((index[f"null:{col}"], pc.is_null(values)))
        if pa.types.is_floating(values.type) or pa.types.is_decimal(values.type):
            as_float = pc.cast(values, pa.float32())
            # is_finite is null where the value is null (that row is the null rule's, or allowed).
            finite = pc.fill_null(pc.is_finite(as_float), True)
            if col in allowed:  # NaN is "missing" there, which the model handles; +-inf is not
                finite = pc.or_(finite, pc.fill_null(pc.is_nan(as_float), False))
            if not pc.all(finite).as_py():
                masks.append((index[f"nonfinite:{col}"], pc.invert(finite)))
    for col in spec.dataset.features.categorical:
        values = batch.column(col)
        if values.null_count:
            masks.append((index[f"null:{col}"], pc.is_null(values)))
    codes = np.zeros(batch.num_rows, dtype=np.int16)
    for code, mask in reversed(masks):
        codes[mask.to_numpy(zero_copy_only=False)] = code
    return RowVerdict(codes=codes, labels=labels)


def reject_reasons(batch: pa.RecordBatch, spec: ModelSpec) -> pa.Array:
    """Per row, the first failing rule as ``null:<col>`` / ``nonfinite:<col>``, or null if scoreable."""
    import pyarrow as pa

    verdict = check_rows(batch, spec)
    indices = pa.array(verdict.codes - 1, pa.int16(), mask=verdict.scoreable)
    return pa.DictionaryArray.from_arrays(indices, pa.array(verdict.labels, pa.string())).cast(pa.string())


def split_scoreable(batch: pa.RecordBatch, spec: ModelSpec) -> tuple[pa.RecordBatch, pa.Table]:
    """``(good_batch, rejects)``: the scoreable rows, and every other row with all of its
    columns plus ``reject_reason``. Row order is kept in both."""
    import pyarrow as pa

    verdict = check_rows(batch, spec)
    if verdict.rejected == 0:  # the common case: nothing to reject, no copy
        empty = batch.slice(0, 0).append_column(REJECT_REASON, pa.array([], pa.string()))
        return batch, pa.Table.from_batches([empty])
    good_batch = batch.filter(pa.array(verdict.scoreable))
    rejects = batch.filter(pa.array(~verdict.scoreable)).append_column(REJECT_REASON, verdict.reasons())
    return good_batch, pa.Table.from_batches([rejects])
