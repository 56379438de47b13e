"""Batch scoring: one partition (or one row range of it) through one onnxruntime session.

Parquet in, Parquet out, in record batches, so memory stays flat at any partition size:

* the source is read with ``pre_buffer=False`` and a 1 MiB buffer (the default buffers the
  whole file), categorical features as Arrow dictionaries (Parquet stores them that way, so
  building the model's string inputs is a ``take`` on a handful of strings per batch
  instead of one Python ``str`` per row);
* each batch is split by the serving contract (:mod:`include.scoring.contract`), the
  scoreable rows go through the session in chunks of ``batch_size`` (onnxruntime keeps its
  peak arena: one 5M-row run holds 10+ GB), the rejected rows go to the rejects file;
* output goes through the lake's atomic writers: nothing is visible until the whole
  partition is written, a crash leaves nothing, a rerun overwrites.

Output, ``<zone>/<model>/ds=D/data.parquet``: key columns, time column, ``score`` (float32
probability of class 1), ``predicted_label`` (int8, ``score >= spec.training.threshold``),
``model_name``, ``model_version``, ``run_id``, ``ds``; rows in source order. The file's
Parquet key-value metadata carries the run's counts (``airloop.*``).

An unsharded run deletes a ``_manifest.json`` left by an earlier sharded publish of the same
day before its own data file appears (see :mod:`include.scoring.shards`).

With reason codes (``reasons`` given, :mod:`include.scoring.reasons`), the output ends with
``reason_1`` (string, a feature name), ``reason_1_value`` (float32, its contribution in score
units), ... up to ``reason_k`` and ``reason_k_value``, and the metadata key
``airloop.reason_codes`` records the method, ``k`` and the reference values; without them the
schema and metadata are exactly as above.

Rejects, ``<zone>/<model>/ds=D/_rejects.parquet``: every rejected row with its keys, time,
all features and ``reject_reason``. The leading underscore keeps it out of readers of the
zone (pyarrow.dataset, Spark and Hive skip ``_``-prefixed paths; ``Lake.list_partitions``
looks only for ``data.parquet``). It is written on every run, even when empty: a rerun must
replace the rejects of an earlier run, and an empty file says "checked, nothing rejected"
rather than "unknown". It is published just *before* ``data.parquet``, which is the commit
point: once a reader sees the data file, the matching rejects are already in place.

Parallelism: ``threads`` batches are scored at once on the one session (a thread pool; the
session has a single intra-op thread and ``session.run`` releases the GIL), while the main
thread reads, checks and writes the neighbouring batches in order. Measured on 2 idle cores,
HistGradientBoosting over 0.9M rows: 0.81 s this way, 1.12 s with 2 intra-op threads (which
split every 128 rows across threads), 1.52 s with one thread; logistic regression 0.21 s vs
0.34 s. At most ``threads + 1`` batches are in flight, so memory stays bounded.

Reproducibility: a rerun with the same model and input writes the same rows, whatever
``threads``, the batch size or the shard boundaries (and the same bytes with the same batch
size, which sets the row groups). That needs care, because onnxruntime picks kernels by the
shape of a run: with several intra-op threads a tree ensemble sums its trees in per-thread
partial sums for more than 50 rows but sequentially for fewer, and the linear model's GEMM
takes other kernels for a few rows; either way a row's score moved by one float32 ulp
(~1e-7) with the size of the batch it landed in (measured: 7 of 15 batch sizes differed for
HistGradientBoosting at 2 intra-op threads, 3 of 15 for logistic regression at one). With one
intra-op thread the trees are always summed in order, and :func:`score_feeds` pads any run
shorter than ``MIN_RUN_ROWS`` by repeating its rows (dropping the extra outputs), so every
row goes through the same kernels. A test holds 1/2/3 threads and batch sizes 37..65536 to
identical scores.

For a shard (``output_path`` given) the same two files go to ``output_path`` and
:func:`rejects_path_for` ``(output_path)``; :mod:`include.scoring.shards` publishes them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeAlias

from include.lake import DATA_FILE, Lake, LakeError, Zone
from include.scoring.contract import (
    PROBABILITIES_OUTPUT,
    REJECT_REASON,
    check_input_schema,
    check_rows,
    check_signature,
)
from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.scoring.reasons import Explained, ReasonCodes

log = logging.getLogger(__name__)

REJECTS_FILE = "_rejects.parquet"
MANIFEST_FILE = "_manifest.json"
SCORE = "score"
PREDICTED_LABEL = "predicted_label"
META_PREFIX = "airloop."
READ_BUFFER = 1 << 20
LOG_EVERY_BATCHES = 16
MIN_RUN_ROWS = 256
REASON_CODES_KEY = "reason_codes"
"""Metadata key (under ``airloop.``) of the reason codes' method, k and reference values."""


class ScoringError(RuntimeError):
    """Scoring could not start (bad range, unreadable source); names the partition."""


@dataclass(frozen=True)
class ScoreReport:
    """What one scoring run did.

    ``peak_rss_mb`` is the process's peak resident memory so far (``getrusage``): an upper
    bound for this run when the process did other work before. On Linux it also carries
    over fork and exec, so a task process forked from a big parent starts at the parent's size.
    """

    model: str
    ds: str
    rows_in: int
    rows_scored: int
    rows_rejected: int
    reject_reasons: dict[str, int]
    output_uri: str
    rejects_uri: str
    model_name: str
    model_version: int
    run_id: str
    seconds: float
    rows_per_s: float
    peak_rss_mb: float
    score_mean: float | None
    positive_rate: float | None
    row_range: tuple[int, int] | None = None
    batches: int = field(default=0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["row_range"] = list(self.row_range) if self.row_range else None
        return out


# --------------------------------------------------------------------------- building blocks


def make_session(onnx_bytes: bytes, intra_op_threads: int = 1) -> ort.InferenceSession:
    """One CPU session: ``intra_op_threads`` intra-op threads, one inter-op thread, sequential
    execution. :func:`score_partition` uses one intra-op thread and runs ``threads`` batches
    at once on the same session instead (see the module docstring)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    # With several intra-op threads: spinning threads burn the CPU they wait on. On a shared
    # worker (load average 9 on 2 cores) 2 spinning threads scored HistGradientBoosting 1.8x
    # slower than 2 non-spinning ones (5.1 s vs 2.7 s per 0.9M rows).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def rejects_path_for(output_path: str) -> str:
    """Where the rejects of an output written to ``output_path`` go (a sibling file)."""
    stem = output_path[: -len(".parquet")] if output_path.endswith(".parquet") else output_path
    return f"{stem}.rejects.parquet"


def rejects_file(lake: Lake, zone: Zone | str, model: str, ds: date) -> str:
    return f"{lake.partition_dir(zone, model, ds)}/{REJECTS_FILE}"


def source_columns(spec: ModelSpec) -> list[str]:
    """Columns read from the source: keys, time, features and pass-through sensitive columns (in
    that order, no repeats)."""
    return spec.landed_columns


def carried_columns(spec: ModelSpec) -> list[str]:
    """Source columns copied into every prediction row: keys, time and the sensitive columns of
    ``gate.fairness`` (features or pass-through), so predictions can be audited by group."""
    dataset = spec.dataset
    return list(dict.fromkeys([*dataset.key_columns, dataset.time_column, *spec.sensitive_columns]))


def output_schema(source: pa.Schema, spec: ModelSpec, reasons: ReasonCodes | None = None) -> pa.Schema:
    """:func:`carried_columns`, score, label, model and run columns; then ``reasons``' columns, if any."""
    import pyarrow as pa

    fields = [source.field(c).remove_metadata() for c in carried_columns(spec)]
    fields += [
        pa.field(SCORE, pa.float32(), nullable=False),
        pa.field(PREDICTED_LABEL, pa.int8(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.int32(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("ds", pa.date32(), nullable=False),
    ]
    if reasons is not None:
        fields += reasons.fields()
    return pa.schema(fields)


def rejects_schema(source: pa.Schema, spec: ModelSpec) -> pa.Schema:
    """The source columns as stored (dictionary-read categoricals back to strings) + reason."""
    import pyarrow as pa

    fields = []
    for name in source_columns(spec):
        f = source.field(name).remove_metadata()
        if pa.types.is_dictionary(f.type):
            f = f.with_type(f.type.value_type)
        fields.append(f)
    return pa.schema([*fields, pa.field(REJECT_REASON, pa.string(), nullable=False)])


def batch_feeds(batch: pa.RecordBatch, spec: ModelSpec, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The model's inputs: float32 ``(n, 1)`` per numeric feature, object ``(n, 1)`` of ``str``
    per categorical feature, exactly what ``onnx_export.onnx_inputs`` builds from a DataFrame
    (a test holds them equal), without pandas and without a Python loop over rows.

    ``rows`` (a boolean mask) selects the scoreable rows; selecting on the numpy arrays is
    much cheaper than filtering every Arrow column. The selected rows must have passed the
    contract (:func:`include.scoring.contract.check_rows`): no nulls, all finite.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    feeds: dict[str, np.ndarray] = {}
    for col in spec.dataset.features.numeric:
        values = np.asarray(pc.cast(batch.column(col), pa.float32()).to_numpy(zero_copy_only=False), dtype=np.float32)
        feeds[col] = (values if rows is None else values[rows]).reshape(-1, 1)
    for col in spec.dataset.features.categorical:
        column = batch.column(col)
        if pa.types.is_dictionary(column.type):
            # A few distinct strings per batch: convert those once, then gather by index
            # (null indices, in rejected rows only, are filled so the gather stays integer).
            words = np.asarray(column.dictionary.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
            indices = column.indices
            codes = (pc.fill_null(indices, 0) if indices.null_count else indices).to_numpy(zero_copy_only=False)
            feeds[col] = words[codes if rows is None else codes[rows]].reshape(-1, 1)
        else:
            text = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
            feeds[col] = (text if rows is None else text[rows]).reshape(-1, 1)
    return feeds


def score_feeds(session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """float32 probability of class 1 for each row of ``feeds``."""
    import numpy as np

    n = len(next(iter(feeds.values())))
    if n == 0:
        return np.empty(0, dtype=np.float32)
    if n < MIN_RUN_ROWS:
        # Small runs take other kernels (see the module docstring): pad by repeating rows.
        feeds = {name: np.resize(values, (MIN_RUN_ROWS, 1)) for name, values in feeds.items()}
    proba = session.run([PROBABILITIES_OUTPUT], feeds)[0]
    return np.ascontiguousarray(np.asarray(proba)[:n, 1], dtype=np.float32)


def score_batch(session: ort.InferenceSession, batch: pa.RecordBatch, spec: ModelSpec) -> np.ndarray:
    """float32 probability of class 1 for each row of ``batch`` (rows must be scoreable)."""
    return score_feeds(session, batch_feeds(batch, spec))


def iter_row_range(
    parquet: pq.ParquetFile, columns: list[str], batch_size: int, row_range: tuple[int, int] | None
) -> Iterator[pa.RecordBatch]:
    """Stream ``columns`` in batches, restricted to rows ``[start, end)`` of the file: only the
    row groups that overlap the range are read, edge batches are sliced (zero-copy)."""
    if row_range is None:
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
        return
    start, end = row_range
    meta = parquet.metadata
    groups: list[int] = []
    first_row: int | None = None
    offset = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if offset < end and offset + n > start:
            groups.append(i)
            first_row = offset if first_row is None else first_row
        offset += n
    if not groups or first_row is None:
        return
    position = first_row
    for batch in parquet.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns, use_threads=False):
        low, high = max(start - position, 0), min(end - position, batch.num_rows)
        if high > low:
            yield batch if (low, high) == (0, batch.num_rows) else batch.slice(low, high - low)
        position += batch.num_rows
        if position >= end:
            return


def _constant(value: Any, kind: pa.DataType, length: int) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, kind), length)


def _delete_if_exists(lake: Lake, path: str) -> None:
    if lake.exists(path):
        lake.fs.delete_file(path)


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_source(
    lake: Lake, path: str, spec: ModelSpec, ds: date, row_range: tuple[int, int] | None
) -> tuple[Any, pq.ParquetFile]:
    """The source file's handle and reader, once its schema holds the spec's features and
    ``row_range`` (if any) lies inside its rows; :class:`ScoringError` otherwise."""
    import pyarrow.parquet as pq

    try:
        handle = lake.fs.open_input_file(path)
    except FileNotFoundError:
        raise LakeError(f"{spec.name}: nothing to score, no such partition: {lake.to_uri(path)}") from None
    try:
        try:
            metadata = pq.read_metadata(handle)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError; it names no file
            raise LakeError(f"{spec.name}: cannot read {lake.to_uri(path)} as Parquet: {exc}") from exc
        check_input_schema(metadata.schema.to_arrow_schema(), spec)
        parquet = pq.ParquetFile(
            handle,
            metadata=metadata,
            pre_buffer=False,
            buffer_size=READ_BUFFER,
            read_dictionary=list(spec.dataset.features.categorical),
        )
        num_rows = parquet.metadata.num_rows
        if row_range is not None and not 0 <= row_range[0] <= row_range[1] <= num_rows:
            raise ScoringError(
                f"{spec.name} {ds}: row range {row_range} is outside the {num_rows} rows of {lake.to_uri(path)}"
            )
    except Exception:
        handle.close()
        raise
    return handle, parquet


class _Output:
    """Appends scored batches to the predictions writer and keeps the run's totals."""

    def __init__(
        self,
        writer: pq.ParquetWriter,
        schema: pa.Schema,
        threshold: float,
        constants: list[Any],
        reasons: ReasonCodes | None = None,
    ) -> None:
        self.writer, self.schema, self.threshold = writer, schema, threshold
        self.constants, self.reasons = constants, reasons
        self.constant_types = [schema.field(name).type for name in ("model_name", "model_version", "run_id", "ds")]
        self._cache: dict[int, list[pa.Array]] = {}
        self.rows = self.positives = 0
        self.score_sum = 0.0

    def write(self, kept: pa.RecordBatch, scored: _Scored) -> None:
        import numpy as np
        import pyarrow as pa

        scores, explained = scored
        n = len(scores)
        labels = (scores >= self.threshold).astype(np.int8)
        if n not in self._cache:  # batches mostly share one size: build the constant columns once
            self._cache = {n: [_constant(v, t, n) for v, t in zip(self.constants, self.constant_types, strict=True)]}
        columns = [*kept.columns, pa.array(scores, pa.float32()), pa.array(labels, pa.int8()), *self._cache[n]]
        if self.reasons is not None and explained is not None:
            columns += self.reasons.arrays(explained)
        self.writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self.rows += n
        self.positives += int(labels.sum())
        self.score_sum += float(scores.sum(dtype=np.float64))


_Scored: TypeAlias = "tuple[np.ndarray, Explained | None]"
"""A batch's scores and, with reason codes, its :class:`~include.scoring.reasons.Explained`."""


def _score_task(session: ort.InferenceSession, feeds: dict[str, np.ndarray], reasons: ReasonCodes | None) -> _Scored:
    """One batch's scores, and its reason codes when ``reasons`` is given (run on the pool)."""
    if reasons is None:
        return score_feeds(session, feeds), None
    explained = reasons.explain(lambda stacked: score_feeds(session, stacked), feeds)
    return explained.scores, explained


def _done(item: tuple[Future[_Scored], pa.RecordBatch]) -> tuple[pa.RecordBatch, _Scored]:
    future, kept = item
    return kept, future.result()


# --------------------------------------------------------------------------- the run


def score_partition(
    spec: ModelSpec,
    lake: Lake,
    ds: date,
    onnx_bytes: bytes,
    *,
    model_name: str,
    model_version: int,
    run_id: str,
    zone: Zone = Zone.PREDICTIONS,
    source_zone: Zone = Zone.VALIDATED,
    batch_size: int | None = None,
    threads: int | None = None,
    row_range: tuple[int, int] | None = None,
    output_path: str | None = None,
    reasons: ReasonCodes | None = None,
) -> ScoreReport:
    """Score the ``source_zone`` partition of ``ds`` (or rows ``row_range`` of it) and publish
    the predictions and rejects atomically; see the module docstring for paths and columns.

    Raises :class:`~include.scoring.contract.SignatureMismatchError` before reading any row
    if the model does not fit the spec, :class:`~include.scoring.contract.InputSchemaError`
    if the partition lacks a feature, :class:`ScoringError` for a bad ``row_range``.

    ``reasons``: write its top-k reason codes per row (:mod:`include.scoring.reasons`); the
    caller builds it from the spec's ``scoring.reason_codes`` and the version's reference
    profile (:func:`include.scoring.reasons.reason_codes_for`). ``None``: no reason columns.

    Stages: open and check the source -> :func:`_stream_batches` (check, score, write in order)
    -> :func:`_output_metadata` on the data file -> publish (the writers' exits) -> the report.
    The source handle, both writers and the pool stay in this one function (~90 lines): they
    are nested contexts whose exit order is the publish order.
    """
    started = time.perf_counter()
    batch_size = batch_size or spec.scoring.batch_size
    threads = threads or spec.scoring.threads
    model = spec.name
    if output_path is None:
        out_path = lake.partition_file(zone, model, ds)
        rej_path = rejects_file(lake, zone, model, ds)
    else:
        out_path, rej_path = output_path, rejects_path_for(output_path)

    session = make_session(onnx_bytes, 1)
    check_signature(session, spec)
    handle, parquet = _open_source(lake, lake.partition_file(source_zone, model, ds), spec, ds, row_range)
    with contextlib.closing(handle):
        num_rows = parquet.metadata.num_rows
        schema = output_schema(parquet.schema_arrow, spec, reasons)
        rej_schema = rejects_schema(parquet.schema_arrow, spec)
        log.info(
            "scoring %s %s rows %s of %s with %s v%s (batch %s, %s threads, %s reason codes) -> %s",
            model,
            ds,
            row_range or "all",
            num_rows,
            model_name,
            model_version,
            batch_size,
            threads,
            reasons.k if reasons else 0,
            lake.to_uri(out_path),
        )
        if output_path is None:
            data_writer = lake.partition_writer(zone, model, ds, schema)
        else:
            data_writer = lake.parquet_writer(out_path, schema)
        with (
            data_writer as writer,
            lake.parquet_writer(rej_path, rej_schema) as rejects,
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="airloop-score") as pool,
        ):
            out = _Output(
                writer, schema, spec.training.threshold, [model_name, int(model_version), run_id, ds], reasons
            )
            streamed = _stream_batches(
                spec,
                ds,
                parquet,
                session,
                out,
                _Rejects(rejects, rej_schema),
                pool,
                threads,
                batch_size,
                row_range,
                started,
            )
            metadata = _output_metadata(spec, ds, model_name, model_version, run_id, streamed, out.rows, row_range)
            if reasons is not None:
                metadata[REASON_CODES_KEY] = json.dumps(reasons.describe())
            writer.add_key_value_metadata({META_PREFIX + k: v for k, v in metadata.items()})
            if output_path is None:
                # A manifest left by an earlier sharded publish would describe another file:
                # drop it before the new data.parquet becomes visible.
                _delete_if_exists(lake, f"{lake.partition_dir(zone, model, ds)}/{MANIFEST_FILE}")
            # Contexts exit innermost first: rejects are published just before data.parquet.

    return _report(
        lake,
        spec,
        ds,
        (out_path, rej_path),
        (model_name, int(model_version), run_id),
        streamed,
        out,
        row_range,
        started,
    )


def _report(
    lake: Lake,
    spec: ModelSpec,
    ds: date,
    paths: tuple[str, str],
    source: tuple[str, int, str],
    streamed: _Streamed,
    out: _Output,
    row_range: tuple[int, int] | None,
    started: float,
) -> ScoreReport:
    """The run's :class:`ScoreReport` (``paths``: predictions and rejects; ``source``: model
    name, version and run id), logged."""
    out_path, rej_path = paths
    model_name, model_version, run_id = source
    seconds = time.perf_counter() - started
    rows_in = streamed.rows_in
    report = ScoreReport(
        model=spec.name,
        ds=ds.isoformat(),
        rows_in=rows_in,
        rows_scored=out.rows,
        rows_rejected=rows_in - out.rows,
        reject_reasons=dict(sorted(streamed.reasons.items())),
        output_uri=lake.to_uri(out_path),
        rejects_uri=lake.to_uri(rej_path),
        model_name=model_name,
        model_version=model_version,
        run_id=run_id,
        seconds=seconds,
        rows_per_s=rows_in / seconds if seconds > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
        score_mean=out.score_sum / out.rows if out.rows else None,
        positive_rate=out.positives / out.rows if out.rows else None,
        row_range=row_range,
        batches=streamed.batches,
    )
    log.info(
        "scored %s %s: %s rows in, %s scored, %s rejected %s, %.2f s (%.0f rows/s), peak RSS %.0f MB -> %s",
        spec.name,
        ds,
        rows_in,
        out.rows,
        report.rows_rejected,
        report.reject_reasons or "",
        seconds,
        report.rows_per_s,
        report.peak_rss_mb,
        report.output_uri,
    )
    return report


@dataclass(frozen=True)
class _Rejects:
    """Where rejected rows go: the rejects writer and its schema."""

    writer: pq.ParquetWriter
    schema: pa.Schema


@dataclass(frozen=True)
class _Streamed:
    """What the batch loop read: rows, batches and reject counts by reason."""

    rows_in: int
    batches: int
    reasons: dict[str, int]


def _stream_batches(
    spec: ModelSpec,
    ds: date,
    parquet: pq.ParquetFile,
    session: ort.InferenceSession,
    out: _Output,
    rejects: _Rejects,
    pool: ThreadPoolExecutor,
    threads: int,
    batch_size: int,
    row_range: tuple[int, int] | None,
    started: float,
) -> _Streamed:
    """Check every batch of the range, write its rejects, score the rest on ``pool`` and write
    the scores in input order. At most ``threads + 1`` batches wait in memory."""
    passthrough = carried_columns(spec)
    pending: deque[tuple[Future[_Scored], pa.RecordBatch]] = deque()
    rows_in = batches = 0
    reasons: Counter[str] = Counter()
    try:
        for batch in iter_row_range(parquet, source_columns(spec), batch_size, row_range):
            feeds, kept = _feeds_and_kept(batch, spec, passthrough, rejects, reasons)
            pending.append((pool.submit(_score_task, session, feeds, out.reasons), kept))
            rows_in += batch.num_rows
            batches += 1
            # Keep every worker busy plus one batch ready; write results in order.
            while len(pending) > threads:
                out.write(*_done(pending.popleft()))
            if batches % LOG_EVERY_BATCHES == 0:
                elapsed = time.perf_counter() - started
                log.info(
                    "%s %s: %s rows read in %.1f s (%.0f rows/s), %s rejected",
                    spec.name,
                    ds,
                    rows_in,
                    elapsed,
                    rows_in / elapsed,
                    sum(reasons.values()),
                )
        while pending:
            out.write(*_done(pending.popleft()))
    except BaseException:
        for future, _ in pending:
            future.cancel()
        raise
    return _Streamed(rows_in=rows_in, batches=batches, reasons=dict(reasons))


def _feeds_and_kept(
    batch: pa.RecordBatch, spec: ModelSpec, passthrough: list[str], rejects: _Rejects, reasons: Counter[str]
) -> tuple[dict[str, np.ndarray], pa.RecordBatch]:
    """The model feeds and passthrough columns of the batch's scoreable rows; its rejected rows
    are written to ``rejects`` and counted in ``reasons``."""
    import pyarrow as pa

    verdict = check_rows(batch, spec)
    if not verdict.rejected:
        return batch_feeds(batch, spec), batch.select(passthrough)
    keep = verdict.scoreable
    bad = batch.filter(pa.array(~keep)).append_column(REJECT_REASON, verdict.reasons())
    rejects.writer.write_table(pa.Table.from_batches([bad]).select(rejects.schema.names).cast(rejects.schema))
    reasons.update(verdict.counts())
    return batch_feeds(batch, spec, rows=keep), batch.select(passthrough).filter(pa.array(keep))


def _output_metadata(
    spec: ModelSpec,
    ds: date,
    model_name: str,
    model_version: int,
    run_id: str,
    streamed: _Streamed,
    rows_scored: int,
    row_range: tuple[int, int] | None,
) -> dict[str, str]:
    """The run's counts for the data file's key-value metadata (without the ``airloop.`` prefix)."""
    return {
        "model": spec.name,
        "ds": ds.isoformat(),
        "model_name": model_name,
        "model_version": str(int(model_version)),
        "run_id": run_id,
        "rows_in": str(streamed.rows_in),
        "rows_scored": str(rows_scored),
        "rows_rejected": str(streamed.rows_in - rows_scored),
        "reject_reasons": json.dumps(dict(sorted(streamed.reasons.items()))),
        "row_range": json.dumps(list(row_range) if row_range else None),
    }


def read_output_metadata(lake: Lake, path: str) -> dict[str, str]:
    """The ``airloop.*`` key-value metadata of a file written by :func:`score_partition`."""
    import pyarrow.parquet as pq

    try:
        with lake.fs.open_input_file(path) as handle:
            raw = pq.read_metadata(handle).metadata or {}
    except FileNotFoundError:
        raise LakeError(f"no such file in the lake: {lake.to_uri(path)}") from None
    out = {}
    for key, value in raw.items():
        name = key.decode()
        if name.startswith(META_PREFIX):
            out[name[len(META_PREFIX) :]] = value.decode()
    return out


__all__ = [
    "DATA_FILE",
    "MANIFEST_FILE",
    "REJECTS_FILE",
    "ScoreReport",
    "ScoringError",
    "batch_feeds",
    "make_session",
    "read_output_metadata",
    "rejects_file",
    "rejects_path_for",
    "score_batch",
    "score_feeds",
    "score_partition",
]
