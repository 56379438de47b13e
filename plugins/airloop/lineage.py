"""What an airloop task read and wrote, as OpenLineage datasets (Airflow's OpenLineage provider).

Every airloop operator answers the provider's ``get_openlineage_facets_on_complete`` /
``_on_failure`` (:class:`~airloop.execution.AirloopBaseOperator`) with the lineage of the steps it
ran: :func:`include.step_lineage.step_lineage` reads it off each step's parameters and JSON result, so
a step run in a container (docker mode) reports the same datasets as one run in the worker.

* a lake partition (``<zone>/<model>/ds=<day>``) is a dataset named like any stored object:
  ``file`` + its path, or ``s3://<bucket>`` + its key; landing and validated partitions carry a
  ``schema`` facet (each column and its role in the spec), outputs an ``outputStatistics`` facet
  (rows), a validated landing partition the ``dataQualityAssertions`` of its contract;
* an MLflow model version is ``models:/<name>/<version>`` in the namespace of its tracking
  server, with ``datasetType`` ``MODEL``, ``version`` and an ``airloop_model`` facet (run id,
  metrics, alias, reason);
* predictions and shadow predictions are partitions; gate reports and drift records are datasets
  of kind ``report``.

(Not named ``openlineage.py``: Airflow imports every file of the plugins folder as a top-level
module of its file name, which would hide the ``openlineage`` client package.)

Nothing is sent unless the provider has a transport (``[openlineage] transport``, e.g.
``AIRFLOW__OPENLINEAGE__TRANSPORT='{"type": "http", "url": "http://marquez:5000"}'``): without one
the provider is disabled and these methods are never called. Imported only when they are.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    from include.step_lineage import LineageDataset, StepLineage

MODEL_FACET = "airloop_model"
PARTITION_FACET = "airloop_partition"


@functools.cache
def facet_classes() -> tuple[type, type]:
    """(``AirloopModelDatasetFacet``, ``AirloopPartitionDatasetFacet``): the two custom facets,
    built on first use so that loading this module (Airflow loads every plugin file in every
    process) does not import the OpenLineage client."""
    import attr
    from openlineage.client.generated.base import DatasetFacet

    @attr.define
    class AirloopModelDatasetFacet(DatasetFacet):
        """An airloop model version: its MLflow run, held-out metrics, alias and why it was trained."""

        model: str
        version: int
        runId: str | None = attr.field(default=None)  # OpenLineage facets are camelCase
        alias: str | None = attr.field(default=None)
        metrics: dict[str, float] = attr.field(factory=dict)
        reason: str | None = attr.field(default=None)

    @attr.define
    class AirloopPartitionDatasetFacet(DatasetFacet):
        """One day of a lake zone: the day, and what the loop decided about it."""

        partition: str
        quarantined: bool = attr.field(default=False)
        anomalous: bool = attr.field(default=False)
        verdict: str | None = attr.field(default=None)
        supersedes: int | None = attr.field(default=None)

    return AirloopModelDatasetFacet, AirloopPartitionDatasetFacet


def operator_lineage(lineage: StepLineage) -> OperatorLineage:
    """The provider's lineage of a task from what its steps read and wrote (duplicates merged)."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=[_input(d) for d in _unique(lineage.inputs)],
        outputs=[_output(d) for d in _unique(lineage.outputs)],
    )


def _unique(datasets: Iterable[LineageDataset]) -> list[LineageDataset]:
    """One dataset per (namespace, name), the facts of its mentions merged (later ones win)."""
    from include.step_lineage import LineageDataset

    seen: dict[tuple[str, str], LineageDataset] = {}
    for d in datasets:
        key = (d.namespace, d.name)
        if key in seen:
            d = LineageDataset(d.namespace, d.name, d.kind, {**seen[key].facts, **d.facts})
        seen[key] = d
    return list(seen.values())


def _facets(d: LineageDataset) -> dict[str, Any]:
    from openlineage.client.facet_v2 import dataset_type_dataset, dataset_version_dataset, schema_dataset

    model_facet, partition_facet = facet_classes()
    f = d.facts
    facets: dict[str, Any] = {}
    if d.kind == "model":
        facets["datasetType"] = dataset_type_dataset.DatasetTypeDatasetFacet(datasetType="MODEL", subType="ONNX")
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(f["version"]))
        facets[MODEL_FACET] = model_facet(
            model=d.name.split("/")[1],
            version=int(f["version"]),
            runId=f.get("run_id"),
            alias=f.get("alias"),
            metrics={k: float(v) for k, v in (f.get("metrics") or {}).items() if isinstance(v, int | float)},
            reason=f.get("reason"),
        )
        return facets
    if f.get("columns"):
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=c, type=role) for c, role in f["columns"]]
        )
    if f.get("partition"):
        facets[PARTITION_FACET] = partition_facet(
            partition=str(f["partition"]),
            quarantined=bool(f.get("quarantined")),
            anomalous=bool(f.get("anomalous")),
            verdict=f.get("verdict"),
            supersedes=f.get("supersedes"),
        )
    facets["datasetType"] = dataset_type_dataset.DatasetTypeDatasetFacet(
        datasetType="FILE" if d.kind == "report" else "TABLE", subType=d.kind
    )
    return facets


def _input(d: LineageDataset) -> InputDataset:
    from openlineage.client.event_v2 import InputDataset
    from openlineage.client.facet_v2 import data_quality_assertions_dataset

    input_facets: dict[str, Any] = {}
    if assertions := d.facts.get("assertions"):
        input_facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[
                data_quality_assertions_dataset.Assertion(
                    assertion=a["rule"],
                    success=bool(a["success"]),
                    column=a.get("column"),
                    severity=a.get("severity"),
                    expected=a.get("expected"),
                    actual=a.get("actual"),
                )
                for a in assertions
            ]
        )
    return InputDataset(namespace=d.namespace, name=d.name, facets=_facets(d), inputFacets=input_facets)


def _output(d: LineageDataset) -> OutputDataset:
    from openlineage.client.event_v2 import OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    output_facets: dict[str, Any] = {}
    if isinstance(d.facts.get("rows"), int):
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=int(d.facts["rows"])
        )
    return OutputDataset(namespace=d.namespace, name=d.name, facets=_facets(d), outputFacets=output_facets)
