"""Validate one daily partition against its model's contract with Great Expectations 1.x.

:func:`validate_partition` builds an ExpectationSuite in code from :func:`rules_for`, runs it on an
ephemeral GX context over a pandas dataframe batch, and turns GX's result into one
:class:`RuleOutcome` per rule. It also covers what GX cannot:

- a file that is not readable Parquet becomes a failed ``readable`` rule (GX never sees it);
- rules on a missing column fail with "column missing" instead of crashing inside GX;
- value rules on a column of the wrong type (a range over strings, the partition window over a
  non-datetime column) fail as "not checked" and leave the type error to the ``dtype`` rule;
- an expectation that crashed (GX reports ``success=False`` with ``exception_info``) fails with the
  exception text in ``detail``.

Mix: a partition outside the contract's ``mix`` share bounds is *anomalous*, not failed: it passes
(and is scored), the result carries ``anomalous`` and ``mix_findings``, and a marker in the lake
keeps it out of training windows and drift references (``include.quality.anomaly``).

GX pitfalls handled here: an empty batch passes most expectations, so ``row_count`` has a
floor of 1 row; range checks skip NaN, so a failed range reports its NaN count separately and leaves
them to ``null_rate``; datetime bounds are ``Timestamp`` objects; pandas extension dtypes
(``string``, ``Int64``, ``category``, Arrow-backed) are normalised to numpy/object first because
GX's type-list check never matches them.

Speed (benchmarks/validate.py): GX's pandas range check is vectorised only for int64, float64 and
datetime64[ns] (anything else, e.g. the lake's datetime64[us], goes value by value: 3.5 s per 1M
rows), so frames are normalised to those dtypes; frames are consolidated (GX copies the whole
frame per expectation); GX's batch fingerprint (a hash of the whole frame) is skipped; and rules
run BOOLEAN_ONLY with a BASIC re-run of the failed ones only (see :func:`_run_gx`).

Reports: with a lake, the full GX result (with our outcomes) is written as JSON and a
self-contained HTML page under ``reports/<model>/validation/``, named by partition and report key
so reruns never overwrite each other. GX's own Data Docs page is not used: it links 14 CDN assets
(bootstrap, jQuery, vega, font-awesome) and relative ``static/`` files, so it is not self-contained
and renders unstyled offline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.lake import Lake
from include.quality.anomaly import describe, mix_findings, record_anomaly
from include.quality.contract import Rule, partition_window, rules_for
from include.reports.format import fmt_short, jsonable
from include.spec import ModelSpec, Severity

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

REPORT_KIND = "validation"
#: "two_pass": BOOLEAN_ONLY for every rule, then BASIC for the failed ones (see _run_gx);
#: or a GX result format for one pass. Measured in benchmarks/validate.py.
RESULT_MODE = "two_pass"
#: BASIC gives counts and up to 20 sample values per rule without SUMMARY's per-value tallies.
DETAIL_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 20}
#: Skip GX's whole-frame hash (see _without_gx_fingerprint); the benchmark turns it back on.
SKIP_GX_FINGERPRINT = True
NUMERIC_TYPES = [
    *(f"{kind}{bits}" for kind in ("int", "uint") for bits in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    # object columns are checked value by value: Python numbers pass, strings do not.
    "int",
    "float",
]
STRING_TYPES = ["str"]
DATETIME_TYPES = ["datetime64", "datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"]
_DTYPE_LISTS = {"numeric": NUMERIC_TYPES, "string": STRING_TYPES, "datetime": DATETIME_TYPES}
SUMMARY_RULES = 8  # failed rules named in the one-line summary; the reports list them all
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


@dataclass(frozen=True)
class RuleOutcome:
    """The result of one rule: ``observed`` and ``expected`` are JSON-able."""

    rule: str
    column: str | None
    severity: Severity
    success: bool
    observed: Any
    expected: Any
    detail: str = ""

    @property
    def status(self) -> str:
        if self.success:
            return "PASS"
        return "FAIL" if self.severity == "error" else "WARN"


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating one partition; ``passed`` is False iff an error-severity rule failed."""

    passed: bool
    rows: int
    outcomes: list[RuleOutcome]
    errors: list[RuleOutcome]
    warnings: list[RuleOutcome]
    summary: str
    report_json_uri: str | None = None
    data_docs_uri: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Outside the contract's ``mix`` bounds (include.quality.anomaly): valid, scored, but kept
    # out of training windows and drift references.
    mix_findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def anomalous(self) -> bool:
        return bool(self.mix_findings)

    def failed_rules(self) -> list[str]:
        return [o.rule for o in (*self.errors, *self.warnings)]

    def to_dict(self) -> dict[str, Any]:
        """A small JSON-able summary (for XCom and asset extras): no per-rule details."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "summary": self.summary,
            "errors": [o.rule for o in self.errors],
            "warnings": [o.rule for o in self.warnings],
            "report_json_uri": self.report_json_uri,
            "data_docs_uri": self.data_docs_uri,
            "anomalous": self.anomalous,
            "mix_findings": self.mix_findings,
        }


class _Unreadable(Exception):
    pass


# ---------------------------------------------------------------------------------------- input
def _read_parquet(source: str | Path, lake: Lake | None) -> pa.Table:
    """Read a whole Parquet file from a local path, a ``file://``/``s3://`` URI or a lake path."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    text = str(source)
    fs: pafs.FileSystem
    if lake is not None and text.startswith(lake.uri + "/"):
        fs, path = lake.fs, lake.root + text[len(lake.uri) :]
    elif lake is not None and text.startswith(lake.root + "/"):
        fs, path = lake.fs, text
    elif "://" in text:
        fs, path = pafs.FileSystem.from_uri(text)
    else:
        fs, path = pafs.LocalFileSystem(), str(Path(text).resolve())
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"no such partition file: {text}")
    try:
        with fs.open_input_file(path) as handle:
            return pq.ParquetFile(handle, pre_buffer=False).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _Unreadable(f"{text}: {type(exc).__name__}: {exc}") from exc


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    import pyarrow as pa

    try:
        # Nanosecond times: GX compares only datetime64[ns] vectorised (see canonical_frame).
        return table.to_pandas(coerce_temporal_nanoseconds=True)
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise _Unreadable(f"cannot convert to pandas: {exc}") from exc


def canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise pandas extension dtypes to what GX's pandas type checks understand.

    ``string``/Arrow strings and string ``category`` become ``object`` (values stay ``str``),
    nullable and Arrow numbers become ``float64`` (missing values become NaN), times become naive
    UTC (as ingest stores them) ``datetime64[ns]``, other numpy numbers ``int64``/``float64``
    (the only dtypes GX compares vectorised). Columns already in those dtypes are not copied.
    """
    import pandas as pd

    converted: dict[str, Any] = {}
    for name, series in frame.items():
        dtype = series.dtype
        if isinstance(dtype, pd.DatetimeTZDtype):
            converted[str(name)] = series.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
        elif isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_datetime64_any_dtype(dtype):
            if series.dt.tz is not None:
                series = series.dt.tz_convert("UTC").dt.tz_localize(None)
            converted[str(name)] = series.astype("datetime64[ns]")
        elif isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or (
            isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(dtype)
        ):
            converted[str(name)] = series.astype(object).where(series.notna(), None)
        elif isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype):
            if pd.api.types.is_bool_dtype(dtype):
                converted[str(name)] = series.astype(object).where(series.notna(), None)
            else:
                converted[str(name)] = series.to_numpy(dtype="float64", na_value=math.nan)
        elif dtype.kind == "M" and dtype != "datetime64[ns]":
            # GX compares only datetime64[ns] vectorised; other units go value by value (10x slower).
            converted[str(name)] = series.astype("datetime64[ns]")
        elif dtype.kind in "iuf" and dtype not in ("int64", "float64"):
            # Likewise for numbers: only int64/float64 take GX's vectorised range check.
            converted[str(name)] = series.astype("int64" if dtype.kind == "i" else "float64")
    if converted:
        frame = frame.copy(deep=False)
        for name, values in converted.items():
            frame[name] = values
    return _consolidated(frame)


def _consolidated(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame whose columns sit in one block per dtype.

    GX filters the whole frame for most expectations (``df[mask]``), and pandas consolidates the
    blocks of every such copy again: on 1M rows x 16 columns built column by column that is
    about 0.1 s per expectation. One consolidating copy up front removes it. (``_mgr`` is private
    pandas API, hence the guard: without it we simply do not copy.)
    """
    manager = getattr(frame, "_mgr", None)
    is_consolidated = getattr(manager, "is_consolidated", None)
    if callable(is_consolidated) and not is_consolidated():
        return frame.copy()
    return frame


# ---------------------------------------------------------------------------------------- GX
@contextlib.contextmanager
def _without_gx_fingerprint() -> Iterator[None]:
    """Skip GX's fingerprint of the batch dataframe while validating.

    GX hashes every pandas batch under 1 GB (``hash_pandas_object`` over all rows, ~1.2-1.8 s per
    1M rows x 16 columns on 2 cores) only to store the digest in ``batch_markers``. We validate
    one partition per run and key reports by ds and run id, so the digest buys nothing.
    """
    from great_expectations.execution_engine import pandas_execution_engine

    saved = pandas_execution_engine.HASH_THRESHOLD
    pandas_execution_engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        pandas_execution_engine.HASH_THRESHOLD = saved


def _gx_context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _expectation(rule: Rule, present: Sequence[str], ds: date) -> Any:
    """The GX expectation of a rule (columns known to be present), tagged with the rule name."""
    import great_expectations.expectations as gxe
    import pandas as pd

    meta = {"rule": rule.name}
    expected = rule.expected
    if rule.kind == "row_count":
        return gxe.ExpectTableRowCountToBeBetween(min_value=expected["min"], max_value=expected["max"], meta=meta)
    if rule.kind == "columns:required":
        return gxe.ExpectTableColumnsToMatchSet(column_set=expected["columns"], exact_match=False, meta=meta)
    if rule.kind == "columns:extra":
        # Exact match against the allowed columns that are present: fails iff a column is extra
        # (missing columns are the job of columns:required).
        allowed = [c for c in expected["allowed"] if c in present]
        return gxe.ExpectTableColumnsToMatchSet(column_set=allowed, exact_match=True, meta=meta)
    if rule.kind == "unique":
        if len(rule.columns) == 1:
            return gxe.ExpectColumnValuesToBeUnique(column=rule.columns[0], meta=meta)
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rule.columns), meta=meta)
    if rule.column is None:
        raise ValueError(f"rule {rule.name} of kind {rule.kind} needs a column")
    column: str = rule.column
    if rule.kind == "dtype":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=_DTYPE_LISTS[expected["dtype"]], meta=meta)
    if rule.kind == "range":
        return gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=expected["min"], max_value=expected["max"], meta=meta
        )
    if rule.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=expected["values"], meta=meta)
    if rule.kind == "null_rate":
        return gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=1.0 - expected["max_null_rate"], meta=meta)
    if rule.kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta)
    if rule.kind == "time_in_partition":
        start, end = partition_window(ds)
        # Bounds must be Timestamps: GX compares string bounds as text. The day is half-open.
        return gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=pd.Timestamp(start), max_value=pd.Timestamp(end), strict_max=True, meta=meta
        )
    raise ValueError(f"no expectation for rule kind {rule.kind!r}")


def _exception_text(info: Any) -> str | None:
    """GX puts either one ``{raised_exception, exception_message}`` or a dict of them per metric."""
    if not isinstance(info, dict) or not info:
        return None
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [str(c.get("exception_message") or "") for c in candidates if c.get("raised_exception")]
    return "; ".join(dict.fromkeys(m for m in messages if m)) or ("exception" if messages else None)


# ---------------------------------------------------------------------------------------- outcomes
def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def _samples(values: Any, limit: int = 5) -> str:
    unique = list(dict.fromkeys(str(v) for v in (values or [])))
    text = ", ".join(repr(v) for v in unique[:limit])
    return text + (", ..." if len(unique) > limit else "")


def _outcome_from_gx(rule: Rule, result: dict[str, Any], success: bool, rows: int) -> RuleOutcome:
    """Observed value and a one-line detail for a rule from its GX ``result`` dict."""
    expected = rule.expected
    if not result and rule.kind != "row_count":  # BOOLEAN_ONLY: a verdict without numbers
        return RuleOutcome(rule.name, rule.column, rule.severity, success, None, expected, "" if success else "failed")
    unexpected = int(result.get("unexpected_count") or 0)
    elements = int(result.get("element_count") or rows)
    missing = int(result.get("missing_count") or 0)
    observed: Any
    detail = ""
    if rule.kind == "row_count":
        observed = result.get("observed_value", rows)
        bounds = f"[{expected['min']}, {expected['max'] if expected['max'] is not None else 'inf'}]"
        detail = _rows(int(observed or 0)) + ("" if success else f" outside {bounds}")
    elif rule.kind in ("columns:required", "columns:extra"):
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        key = "missing" if rule.kind == "columns:required" else "unexpected"
        found = sorted(mismatched.get(key) or [])
        observed = {key: found, "columns": sorted(result.get("observed_value") or [])}
        detail = "" if not found else f"{key}: {', '.join(found)}"
    elif rule.kind == "dtype":
        if "observed_value" in result:
            observed = {"dtype": result["observed_value"]}
            detail = "" if success else f"dtype {result['observed_value']}, expected {expected['dtype']}"
        else:  # object column checked value by value
            observed = {"dtype": "object", "bad_values": unexpected, "examples": result.get("partial_unexpected_list")}
            if not success:
                detail = f"{unexpected} values are not {expected['dtype']}, e.g. {_samples(result.get('partial_unexpected_list'), 3)}"
    elif rule.kind in ("null_rate", "not_null"):
        rate = unexpected / elements if elements else 0.0
        observed = {"null_rate": round(rate, 6), "nulls": unexpected, "rows": elements}
        if not success:
            detail = (
                f"null rate {rate:.3g} ({unexpected} of {_rows(elements)}) > {fmt_short(expected['max_null_rate'])}"
            )
    elif rule.kind == "range":
        observed = {"outside": unexpected, "nan": missing, "rows": elements}
        bounds = f"[{fmt_short(expected['min']) if expected['min'] is not None else '-inf'}, {fmt_short(expected['max']) if expected['max'] is not None else 'inf'}]"
        detail = f"{_rows(unexpected)} outside {bounds}" if unexpected else ""
        if not success and result.get("partial_unexpected_list"):
            detail += f", e.g. {_samples(result['partial_unexpected_list'], 3)}"
        if missing:
            detail += ("; " if detail else "") + f"{missing} NaN not checked (see null_rate)"
    elif rule.kind == "in_set":
        values = sorted({str(v) for v in result.get("partial_unexpected_list") or []})
        observed = {"unseen_rows": unexpected, "unseen_examples": values, "rows": elements}
        if not success:
            detail = f"{_rows(unexpected)} with unseen values: {_samples(values)}"
    elif rule.kind == "unique":
        observed = {"duplicate_rows": unexpected, "rows": elements}
        if not success:
            detail = f"{_rows(unexpected)} share a key, e.g. {_samples(result.get('partial_unexpected_list'), 3)}"
    elif rule.kind == "time_in_partition":
        observed = {"outside": unexpected, "rows": elements}
        if not success:
            detail = f"{_rows(unexpected)} outside [{expected['min']}, {expected['max']}), e.g. {_samples(result.get('partial_unexpected_list'), 3)}"
    else:  # pragma: no cover - every kind is handled above
        observed = result
    return RuleOutcome(rule.name, rule.column, rule.severity, success, jsonable(observed), expected, detail)


def _precheck(rule: Rule, frame: pd.DataFrame) -> RuleOutcome | None:
    """A failed outcome for a rule GX cannot run meaningfully, else None."""
    import pandas as pd

    missing = [c for c in rule.columns if c not in frame.columns]
    if missing:
        return RuleOutcome(
            rule.name,
            rule.column,
            rule.severity,
            False,
            {"missing_columns": missing},
            rule.expected,
            f"not checked: column missing: {', '.join(missing)}",
        )
    if rule.column is None:
        return None
    dtype = frame[rule.column].dtype
    wrong = None
    if rule.kind == "range" and (not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
        wrong = "numeric"
    elif rule.kind == "time_in_partition" and not pd.api.types.is_datetime64_dtype(dtype):
        wrong = "datetime"
    if wrong:
        return RuleOutcome(
            rule.name,
            rule.column,
            rule.severity,
            False,
            {"dtype": str(dtype)},
            rule.expected,
            f"not checked: column is {dtype}, not {wrong} (see dtype:{rule.column})",
        )
    return None


def _summary(passed: bool, errors: list[RuleOutcome], warnings: list[RuleOutcome], rules: int, rows: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    head = f"{'PASS' if passed else 'FAIL'} {plural(len(errors), 'error')}, {plural(len(warnings), 'warning')}"
    if not errors and not warnings:
        return f"{head} ({rules} rules, {rows} rows)"
    failed = [*errors, *warnings]
    parts = [f"{o.rule} ({o.detail or 'failed'})" for o in failed[:SUMMARY_RULES]]
    if len(failed) > SUMMARY_RULES:
        parts.append(f"and {len(failed) - SUMMARY_RULES} more")
    return f"{head}: {'; '.join(parts)}"


# ---------------------------------------------------------------------------------------- reports
def report_name(ds: date, report_key: str, prefix: str = REPORT_KIND) -> str:
    """File stem of a report: ``<prefix>_<ds>_<key>`` with anything unsafe in the key replaced."""
    key = _UNSAFE.sub("-", report_key).strip("-.") or "run"
    return f"{prefix}_{ds.isoformat()}_{key}"[:120]


def render_html(spec: ModelSpec, ds: date, report_key: str, result: ValidationResult) -> str:
    """A self-contained page (inline CSS, no scripts, no external links) of every rule's outcome,
    failures first (the report kit's ``validation.html``)."""
    from include.reports.render import render

    order = {"FAIL": 0, "WARN": 1, "PASS": 2}
    outcomes = [
        {
            **asdict(outcome),
            "status": outcome.status,
            "observed_json": json.dumps(outcome.observed, default=str),
            "expected_json": json.dumps(outcome.expected, default=str),
        }
        for outcome in sorted(result.outcomes, key=lambda o: order[o.status])
    ]
    return render(
        "validation.html",
        title=f"Validation of {spec.name} ds={ds.isoformat()}",
        report_key=report_key,
        rows=result.rows,
        outcomes=outcomes,
        note="; observed values are measured for failed rules" if RESULT_MODE == "two_pass" else "",
        status="PASS" if result.passed else "FAIL",
        summary=result.summary,
    )


def _write_reports(
    spec: ModelSpec,
    ds: date,
    lake: Lake,
    report_key: str,
    prefix: str,
    result: ValidationResult,
    gx_result: dict[str, Any] | None,
    source: str | None,
) -> tuple[str, str]:
    stem = report_name(ds, report_key, prefix)
    document = {
        "model": spec.name,
        "ds": ds.isoformat(),
        "report_key": report_key,
        "source": source,
        "spec_hash": spec.spec_hash(),
        "passed": result.passed,
        "rows": result.rows,
        "summary": result.summary,
        "anomalous": result.anomalous,
        "mix_findings": result.mix_findings,
        "timings": result.timings,
        "outcomes": [{**asdict(o), "status": o.status} for o in result.outcomes],
        "gx_validation_result": gx_result,
    }
    json_uri = lake.write_bytes(
        lake.report_path(spec.name, REPORT_KIND, f"{stem}.json"),
        json.dumps(document, indent=1, default=str, allow_nan=False).encode(),
    )
    html_uri = lake.write_bytes(
        lake.report_path(spec.name, REPORT_KIND, f"{stem}.html"),
        render_html(spec, ds, report_key, result).encode(),
    )
    return json_uri, html_uri


# ---------------------------------------------------------------------------------------- entry
def validate_partition(
    spec: ModelSpec,
    frame_or_path: pd.DataFrame | pa.Table | str | Path,
    ds: date,
    *,
    lake: Lake | None = None,
    report_prefix: str | None = None,
    report_key: str | None = None,
) -> ValidationResult:
    """Validate one partition (a frame, an Arrow table or a Parquet file) for day ``ds``.

    ``report_prefix`` names the report files (default ``validation``, e.g. ``landing`` or
    ``validated``); ``report_key`` makes them unique per run (use the Airflow run id; a random key
    is used when omitted). Reports are written only when ``lake`` is given. A path that does not
    exist raises :class:`FileNotFoundError`; a file that exists but is not Parquet fails the
    ``readable`` rule.
    """
    import pandas as pd
    import pyarrow as pa

    timings: dict[str, float] = {}
    started = time.perf_counter()
    rules = rules_for(spec, ds)
    outcomes: list[RuleOutcome] = []
    source: str | None = None
    frame: pd.DataFrame | None = None
    try:
        if isinstance(frame_or_path, pd.DataFrame):
            frame = frame_or_path
        elif isinstance(frame_or_path, pa.Table):
            frame = _to_pandas(frame_or_path)
        else:
            source = str(frame_or_path)
            frame = _to_pandas(_read_parquet(frame_or_path, lake))
            outcomes.append(RuleOutcome("readable", None, "error", True, {"source": source}, {"format": "parquet"}))
    except _Unreadable as exc:
        outcomes.append(
            RuleOutcome("readable", None, "error", False, {"source": source}, {"format": "parquet"}, str(exc))
        )
    timings["read_s"] = round(time.perf_counter() - started, 4)

    gx_json: dict[str, Any] | None = None
    rows = 0
    findings: list[dict[str, Any]] = []
    if frame is not None:
        frame = canonical_frame(frame)
        rows = len(frame)
        gx_started = time.perf_counter()
        gx_outcomes, gx_json = _run_gx(spec, rules, frame, ds)
        outcomes.extend(gx_outcomes)
        timings["gx_s"] = round(time.perf_counter() - gx_started, 4)
        findings = mix_findings(frame, spec)

    errors = [o for o in outcomes if not o.success and o.severity == "error"]
    warnings = [o for o in outcomes if not o.success and o.severity == "warn"]
    passed = not errors
    summary = _summary(passed, errors, warnings, len(outcomes), rows)
    if findings:
        summary += f"; anomalous mix: {'; '.join(describe(f) for f in findings)}"
    result = ValidationResult(passed, rows, outcomes, errors, warnings, summary, timings=timings, mix_findings=findings)
    if lake is not None:
        key = report_key or f"adhoc-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        report_started = time.perf_counter()
        json_uri, html_uri = _write_reports(spec, ds, lake, key, report_prefix or REPORT_KIND, result, gx_json, source)
        timings["report_s"] = round(time.perf_counter() - report_started, 4)
        result = ValidationResult(
            passed,
            rows,
            outcomes,
            errors,
            warnings,
            summary,
            json_uri,
            html_uri,
            timings=timings,
            mix_findings=findings,
        )
        if frame is not None:
            record_anomaly(lake, spec.name, ds, findings, json_uri)
    timings["total_s"] = round(time.perf_counter() - started, 4)
    log.info("%s ds=%s: %s", spec.name, ds, summary)
    return result


def _run_gx(
    spec: ModelSpec, rules: list[Rule], frame: pd.DataFrame, ds: date
) -> tuple[list[RuleOutcome], dict[str, Any]]:
    """Run the rules that can run as GX suites; outcomes come back in rule order.

    With ``RESULT_MODE == "two_pass"`` every expectation runs with BOOLEAN_ONLY and only the
    failed ones run again with BASIC for counts and examples: failures are rare, and BASIC's
    unexpected-value lookups copy the whole frame once per expectation. Passing rules then carry
    no observed value (except ``row_count``). Any GX result format name runs in one pass.
    """
    present = [str(c) for c in frame.columns]
    prechecked = {rule.name: _precheck(rule, frame) for rule in rules}
    runnable = {rule.name: rule for rule in rules if prechecked[rule.name] is None}

    context = _gx_context()
    batch_definition = (
        context.data_sources.add_pandas(f"{spec.name}_source")
        .add_dataframe_asset(f"{spec.name}_partition")
        .add_batch_definition_whole_dataframe(f"ds={ds.isoformat()}")
    )
    two_pass = RESULT_MODE == "two_pass"
    first = _run_suite(
        context,
        batch_definition,
        spec,
        ds,
        "contract",
        [_expectation(r, present, ds) for r in runnable.values()],
        frame,
        "BOOLEAN_ONLY" if two_pass else RESULT_MODE,
    )
    results = {str(item.expectation_config.meta.get("rule")): item for item in first.results}
    gx_json = jsonable(first.to_json_dict())
    if two_pass:
        again = [n for n, item in results.items() if not item.success and not _exception_text(item.exception_info)]
        if again:
            second = _run_suite(
                context,
                batch_definition,
                spec,
                ds,
                "failed_detail",
                [_expectation(runnable[n], present, ds) for n in again],
                frame,
                DETAIL_FORMAT,
            )
            detailed = {str(item.expectation_config.meta.get("rule")): item for item in second.results}
            results.update(detailed)
            detail_json = {
                str(r["expectation_config"]["meta"].get("rule")): r for r in jsonable(second.to_json_dict())["results"]
            }
            gx_json["results"] = [
                detail_json.get(str(r["expectation_config"]["meta"].get("rule")), r) for r in gx_json["results"]
            ]
            gx_json["meta"]["airloop_detail_pass"] = {"result_format": DETAIL_FORMAT, "rules": again}

    outcomes = []
    for rule in rules:
        outcome = prechecked[rule.name]
        item = results.get(rule.name)
        if outcome is None and item is not None:
            crashed = _exception_text(item.exception_info)
            if crashed:
                outcome = RuleOutcome(
                    rule.name, rule.column, rule.severity, False, None, rule.expected, f"expectation crashed: {crashed}"
                )
            else:
                outcome = _outcome_from_gx(rule, dict(item.result or {}), bool(item.success), len(frame))
        if outcome is None:  # GX dropped an expectation: never count that as a pass
            outcome = RuleOutcome(
                rule.name, rule.column, rule.severity, False, None, rule.expected, "no result from GX"
            )
        outcomes.append(outcome)
    return outcomes, gx_json


def _run_suite(
    context: Any,
    batch_definition: Any,
    spec: ModelSpec,
    ds: date,
    name: str,
    expectations: list[Any],
    frame: pd.DataFrame,
    result_format: Any,
) -> Any:
    import great_expectations as gx

    suite = context.suites.add(
        gx.ExpectationSuite(
            name=f"{spec.name}_{name}",
            expectations=expectations,
            meta={"model": spec.name, "ds": ds.isoformat(), "spec_hash": spec.spec_hash()},
        )
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{spec.name}_{name}_ds={ds.isoformat()}", data=batch_definition, suite=suite)
    )
    # A ValidationDefinition run builds the batch once (Batch.validate builds it twice).
    fingerprint = _without_gx_fingerprint() if SKIP_GX_FINGERPRINT else contextlib.nullcontext()
    with fingerprint:
        return definition.run(batch_parameters={"dataframe": frame}, result_format=result_format)
