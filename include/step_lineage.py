"""What each step read and wrote, for OpenLineage: plain facts, no OpenLineage import.

The operators turn a :class:`StepLineage` into OpenLineage datasets and facets
(``plugins/airloop/lineage.py``). A step's lineage is read off its parameters and its JSON
result, which a step returns the same in the worker and in a container (docker mode), so both
report the same datasets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlparse

from include.lake import Lake, LakeError
from include.scoring.shards import shard_dir
from include.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineageDataset:
    """One dataset a step read or wrote, named by OpenLineage's naming rules.

    ``kind``: ``partition`` (one day of one lake zone: a folder of Parquet files), ``shards`` (a
    scoring run's shard folder), ``model`` (an MLflow model version) or ``report``. ``facts``:
    plain JSON-able figures (``rows``, ``columns``, ``assertions``, ``version``...)."""

    namespace: str
    name: str
    kind: str
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepLineage:
    inputs: tuple[LineageDataset, ...] = ()
    outputs: tuple[LineageDataset, ...] = ()

    def merge(self, other: StepLineage) -> StepLineage:
        return StepLineage(self.inputs + other.inputs, self.outputs + other.outputs)


def storage_name(uri: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) of a stored object: ``s3://bucket/key`` is
    (``s3://bucket``, ``key``); ``file:///path`` is (``file``, ``/path``), as Airflow's own
    OpenLineage provider names them."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return f"s3://{parsed.netloc}", parsed.path.lstrip("/")
    if parsed.scheme == "file":
        return "file", parsed.path
    raise ValueError(f"no OpenLineage name for {uri!r}: a file:// or s3:// URI")


def lake_dataset(lake: Lake, path: str, kind: str, **facts: Any) -> LineageDataset:
    namespace, name = storage_name(lake.to_uri(path))
    return LineageDataset(namespace, name, kind, facts)


def partition_dataset(lake: Lake, spec: ModelSpec, zone: str, ds: date | str, **facts: Any) -> LineageDataset:
    """One day of one zone (``ds=<day>`` folder), with the spec's columns for the data zones."""
    day = ds if isinstance(ds, date) else date.fromisoformat(ds)
    if zone in ("landing", "validated"):
        facts.setdefault("columns", _columns(spec))
    return lake_dataset(lake, lake.partition_dir(zone, spec.name, day), "partition", partition=day.isoformat(), **facts)


def model_dataset(tracking_uri: str | None, model: str, version: int | str, **facts: Any) -> LineageDataset:
    """A registered model version, named as MLflow addresses it (``models:/<name>/<version>``) in
    the namespace of its tracking server."""
    return LineageDataset(
        _server(tracking_uri), f"models:/{model}/{version}", "model", {"version": int(version), **facts}
    )


def _server(tracking_uri: str | None) -> str:
    """The tracking server's address without credentials (``http://user:secret@host`` -> ``http://host``)."""
    if not tracking_uri:
        return "mlflow"
    parsed = urlparse(tracking_uri)
    host = parsed.netloc.rsplit("@", 1)[-1]
    return parsed._replace(netloc=host).geturl().rstrip("/")


def _columns(spec: ModelSpec) -> list[tuple[str, str]]:
    """(column, role) of a landed row: keys, the time column, numeric and categorical features."""
    d = spec.dataset
    roles = {c: "key" for c in d.key_columns}
    roles.setdefault(d.time_column, "time")
    for c in d.features.numeric:
        roles.setdefault(c, "numeric")
    for c in d.features.categorical:
        roles.setdefault(c, "categorical")
    return list(roles.items())


@dataclass(frozen=True)
class _Ctx:
    spec: ModelSpec
    lake: Lake
    tracking_uri: str | None
    params: Mapping[str, Any]
    result: Mapping[str, Any]

    def part(self, zone: str, ds: date | str | None = None, **facts: Any) -> LineageDataset:
        return partition_dataset(self.lake, self.spec, zone, ds or self.params["ds"], **facts)

    def model(self, version: Any, **facts: Any) -> LineageDataset:
        return model_dataset(self.tracking_uri, self.spec.name, version, **facts)

    def report(self, uri_key: str, **facts: Any) -> LineageDataset:
        return lake_dataset(self.lake, str(self.result[uri_key]).split("://", 1)[1], "report", **facts)

    def shards(self, **facts: Any) -> LineageDataset:
        day = date.fromisoformat(str(self.params["ds"]))
        folder = shard_dir(self.lake, self.spec, day, str(self.params.get("run_key", "cli")))
        return lake_dataset(self.lake, folder, "shards", partition=day.isoformat(), **facts)


def _ingest(c: _Ctx) -> StepLineage:
    r = c.result
    outputs = [c.part("landing", rows=r.get("rows"))]
    if r.get("labels_uri"):
        outputs.append(c.part("labels", r["label_ds"], rows=r.get("label_rows")))
    return StepLineage((), tuple(outputs))


def _validate(c: _Ctx) -> StepLineage:
    r = c.result
    landing = c.part("landing", assertions=_assertions(c.lake, r), rows=r.get("rows"))
    if r.get("passed"):
        out = c.part("validated", rows=r.get("validated_rows"), anomalous=bool(r.get("anomalous")))
    else:
        path = str(r["quarantine_uri"]).split("://", 1)[1]
        out = lake_dataset(c.lake, path, "partition", partition=str(c.params["ds"]), quarantined=True)
    return StepLineage((landing,), (out,))


def _assertions(lake: Lake, result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rule of the contract with its outcome, from the validation report the step wrote;
    the failed rules of the step's result when that report cannot be read."""
    try:
        report = json.loads(lake.read_bytes(str(result["report_json_uri"]).split("://", 1)[1]))
        return [
            {
                "rule": o["rule"],
                "column": o.get("column"),
                "severity": o["severity"],
                "success": bool(o["success"]),
                "expected": json.dumps(o.get("expected"), default=str),
                "actual": json.dumps(o.get("observed"), default=str),
            }
            for o in report["outcomes"]
        ]
    except (LakeError, OSError, KeyError, TypeError, ValueError) as exc:
        log.warning("lineage: no rule outcomes from the validation report (%s): failed rules only", exc)
    failed = [("error", rule) for rule in result.get("errors") or ()]
    failed += [("warning", rule) for rule in result.get("warnings") or ()]
    return [{"rule": rule, "severity": severity, "success": False} for severity, rule in failed]


def _train(c: _Ctx) -> StepLineage:
    r = c.result
    inputs = tuple(c.part("validated", day) for day in r.get("days_used") or ())
    facts = {k: r[k] for k in ("run_id", "metrics", "reason", "end_date") if k in r}
    return StepLineage(inputs, (c.model(r["version"], alias="challenger", **facts),))


def _evaluate(c: _Ctx) -> StepLineage:
    r = c.result
    models = tuple(c.model(r[k]) for k in ("challenger_version", "champion_version") if r.get(k) is not None)
    return StepLineage(models, (c.report("report_json_uri"),))


def _promote(c: _Ctx) -> StepLineage:
    r = c.result
    if r.get("version") is None:
        return StepLineage()
    promoted = (c.model(r["version"], alias="champion"),) if r.get("promoted") else ()
    return StepLineage((c.model(r["version"]),), promoted)


def _rollback(c: _Ctx) -> StepLineage:
    r = c.result
    return StepLineage((c.model(r["previous_version"]),), (c.model(r["version"], alias="champion"),))


def _score(c: _Ctx) -> StepLineage:
    return StepLineage(
        (c.part("validated"), c.model(c.params["version"])), (c.shards(rows=c.result.get("rows_scored")),)
    )


def _publish(c: _Ctx) -> StepLineage:
    r = c.result
    return StepLineage(
        (c.shards(),), (c.part("predictions", rows=r.get("rows_scored"), version=r.get("model_version")),)
    )


def _rescore(c: _Ctx) -> StepLineage:
    p, r = c.params, c.result
    if not r.get("rescored"):
        return StepLineage()
    return StepLineage(
        (c.part("validated"), c.model(p["version"])),
        (c.part("predictions", rows=r.get("rows_scored"), version=p["version"], supersedes=p["replaces"]),),
    )


def _shadow(c: _Ctx) -> StepLineage:
    r = c.result
    return StepLineage(
        (c.part("validated"), c.model(r["challenger_version"])), (c.part("shadow", rows=r.get("rows_scored")),)
    )


def _monitor(c: _Ctx) -> StepLineage:
    r = c.result
    inputs = [c.part("validated"), c.part("predictions"), c.model(r["model_version"])]
    performance = r.get("performance") or {}
    if performance.get("label_day"):
        inputs += [c.part("labels", performance["label_day"]), c.part("predictions", performance["label_day"])]
    return StepLineage(tuple(inputs), (c.report("record_uri", verdict=r.get("verdict")),))


LINEAGE_RULES: dict[str, Callable[[_Ctx], StepLineage]] = {
    "ingest": _ingest,
    "validate": _validate,
    "train": _train,
    "evaluate": _evaluate,
    "promote": _promote,
    "rollback": _rollback,
    "score": _score,
    "publish": _publish,
    "rescore": _rescore,
    "shadow": _shadow,
    "monitor": _monitor,
}


def step_lineage(
    step: str,
    params: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str | None = None,
) -> StepLineage:
    """What ``step`` read and wrote, from its parameters and its result. Empty for a step that
    moves no data (pin, breaker-reset, rescore-plan, replay), skipped or failed."""
    rule = LINEAGE_RULES.get(step)
    if rule is None or result.get("skipped") or result.get("failed"):
        return StepLineage()
    return rule(_Ctx(spec, lake, tracking_uri, params, result))
