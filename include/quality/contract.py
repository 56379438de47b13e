"""The effective data contract of a model: the spec's ``contract:`` section made explicit.

:func:`rules_for` turns a :class:`~include.spec.ModelSpec` into the flat list of rules a daily
partition must satisfy. Defaults come from the dataset section (every key, time and feature column
is required, keys are unique and non-null, every row's time lies inside its partition day); the
``contract:`` section adds ranges, allowed sets, null tolerances, row-count bounds and severity
overrides. Each rule has a stable name (``range:distance``, ``null_rate:pressure``, ``row_count``)
that reports, severity overrides and tests refer to.

This module imports nothing heavy: the rule list can be computed at DAG parse time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args

from include.spec import ModelSpec, Severity

log = logging.getLogger(__name__)

RuleKind = Literal[
    "readable",
    "columns:required",
    "columns:extra",
    "dtype",
    "range",
    "in_set",
    "null_rate",
    "not_null",
    "unique",
    "row_count",
    "time_in_partition",
]
DtypeKind = Literal["numeric", "string", "datetime"]

#: Kinds a ``contract.severity`` key may name to change every rule of that kind at once
#: (an exact rule name wins over its kind).
#: Every rule kind except ``readable``.
RULE_KINDS: tuple[str, ...] = tuple(kind for kind in get_args(RuleKind) if kind != "readable")


@dataclass(frozen=True)
class Rule:
    """One check of the contract.

    ``expected`` is JSON-able and says what the rule requires (it is copied into reports);
    ``columns`` are the columns the rule reads (a rule whose columns are missing cannot run).
    """

    name: str
    kind: RuleKind
    column: str | None
    severity: Severity
    expected: dict[str, Any]
    columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.name,
            "kind": self.kind,
            "column": self.column,
            "severity": self.severity,
            "expected": self.expected,
        }


def required_columns(spec: ModelSpec) -> list[str]:
    """Keys, time column, features and pass-through sensitive columns, in landing order (what
    ingest writes)."""
    return spec.landed_columns


def partition_window(ds: date) -> tuple[datetime, datetime]:
    """The half-open time window ``[ds, ds + 1 day)`` of a daily partition (naive, like the data)."""
    start = datetime.combine(ds, datetime.min.time())
    return start, start + timedelta(days=1)


def _severity(spec: ModelSpec, name: str, kind: str, default: Severity) -> Severity:
    overrides = spec.contract.severity
    if name in overrides:
        return overrides[name]
    if kind in overrides:
        return overrides[kind]
    return default


def rules_for(spec: ModelSpec, ds: date | None = None) -> list[Rule]:
    """The effective rule list of ``spec``'s contract, in report order.

    With ``ds`` the time rule carries the concrete partition window in ``expected``.
    Severity: every rule is an error except extra columns (warn while
    ``allow_extra_columns``) and unseen categories (``unseen_category``); ``contract.severity``
    overrides any rule by exact name (``range:distance``) or by kind (``range``).
    """
    dataset, contract = spec.dataset, spec.contract
    required = required_columns(spec)
    numeric, categorical = dataset.features.numeric, dataset.features.categorical
    keys, time_column = dataset.key_columns, dataset.time_column
    rules: list[Rule] = []

    def add(
        name: str, kind: RuleKind, column: str | None, default: Severity, expected: dict[str, Any], *cols: str
    ) -> None:
        severity = _severity(spec, name, kind, default)
        rules.append(Rule(name, kind, column, severity, expected, tuple(cols) or ((column,) if column else ())))

    # Table level first: a partition with the wrong shape explains most other failures.
    add("row_count", "row_count", None, "error", {"min": max(1, contract.min_rows), "max": contract.max_rows})
    add("columns:required", "columns:required", None, "error", {"columns": required})
    known = list(dict.fromkeys([*required, *contract.ranges, *contract.allowed, *contract.null_rate]))
    add(
        "columns:extra",
        "columns:extra",
        None,
        "warn" if contract.allow_extra_columns else "error",
        {"allowed": known, "allow_extra_columns": contract.allow_extra_columns},
    )

    # Keys: unique and never null.
    if len(keys) == 1:
        add(f"unique:{keys[0]}", "unique", keys[0], "error", {"columns": list(keys)})
    else:
        add(f"unique:{'+'.join(keys)}", "unique", None, "error", {"columns": list(keys)}, *keys)
    for key in keys:
        add(f"not_null:{key}", "not_null", key, "error", {"max_null_rate": 0.0})

    # Time: a datetime column whose every value lies inside the partition day.
    add(f"dtype:{time_column}", "dtype", time_column, "error", {"dtype": "datetime"})
    add(f"not_null:{time_column}", "not_null", time_column, "error", {"max_null_rate": 0.0})
    window: dict[str, Any] = {"window": "[ds, ds + 1 day)"}
    if ds is not None:
        start, end = partition_window(ds)
        window = {"min": start.isoformat(), "max": end.isoformat(), "max_exclusive": True}
    add("time_in_partition", "time_in_partition", time_column, "error", window)

    # Features: type, null tolerance, then ranges and sets.
    for column in numeric:
        add(f"dtype:{column}", "dtype", column, "error", {"dtype": "numeric"})
    for column in categorical:
        add(f"dtype:{column}", "dtype", column, "error", {"dtype": "string"})
    null_columns = [
        c
        for c in dict.fromkeys([*dataset.features.all, *spec.passthrough_columns, *contract.null_rate])
        if c not in (*keys, time_column)
    ]
    for column in null_columns:
        tolerance = contract.null_rate.get(column, contract.max_null_rate)
        add(f"null_rate:{column}", "null_rate", column, "error", {"max_null_rate": tolerance})
    for column, bounds in contract.ranges.items():
        if bounds.min is None and bounds.max is None:
            continue
        add(f"range:{column}", "range", column, "error", {"min": bounds.min, "max": bounds.max})
    for column, values in contract.allowed.items():
        add(f"in_set:{column}", "in_set", column, contract.unseen_category, {"values": sorted(set(values))})
    return rules


def contract_problems(spec: ModelSpec) -> list[str]:
    """Contract entries that are probably mistakes (they never make a rule, or contradict the spec).

    The spec loads anyway; callers (CLI, DAG integrity tests) show these to the user.
    """
    contract, features = spec.contract, spec.dataset.features
    problems: list[str] = []
    names = {r.name for r in rules_for(spec)}
    for key in contract.severity:
        if key not in names and key not in RULE_KINDS:
            problems.append(f"contract.severity: {key!r} names no rule (rules: {', '.join(sorted(names))})")
    for column, bounds in contract.ranges.items():
        if column in features.categorical:
            problems.append(f"contract.ranges.{column}: {column!r} is a categorical feature; ranges apply to numbers")
        if bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
            problems.append(f"contract.ranges.{column}: min {bounds.min} is above max {bounds.max}")
    for column in contract.allowed:
        if column in features.numeric:
            problems.append(
                f"contract.allowed.{column}: {column!r} is a numeric feature; allowed sets apply to categories"
            )
    for column in contract.mix:
        if column not in features.categorical:
            problems.append(f"contract.mix.{column}: {column!r} is not a categorical feature; mix bounds apply to one")
    if contract.max_rows is not None and contract.max_rows < contract.min_rows:
        problems.append(f"contract.max_rows: {contract.max_rows} is below min_rows {contract.min_rows}")
    return problems
