"""A model whose promotions need a person's approval, added to the shared system stack at run time.

Its spec (the flights spec under another name, ``gate.approval_required: true``, a floor of 0 so
every challenger passes the gate) is written into the stack's specs folder; the dag-processor
picks it up at its next parse of the DAG files. Only its promote DAG runs: the others are paused.
Challengers are registered straight into the stack's MLflow from a small ONNX model trained on the
flights days (no training DAG: seconds, not minutes), and the lake gets the labelled days the gate
evaluates them on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from include.lake import Zone
from include.spec import DEFAULT_SPECS_DIR, ModelSpec, load_spec
from tests.system.test_reliability import flights_models
from tests.system.test_reliability_registry import copy_as, register

EVALUATION_DAYS = [date(2013, 1, d) for d in range(9, 17)]  # after the challengers' train_end (2013-01-08)
STEPS = ("ingest", "validate", "train", "score", "monitor", "rollback", "breaker", "replay")


@dataclass
class ApprovalModel:
    name: str
    spec: ModelSpec
    onnx: bytes
    system_stack: Any

    @property
    def dag_id(self) -> str:
        return f"{self.name}__promote"

    def register(self) -> int:
        """A new version of the model (it becomes ``@challenger``)."""
        return register(self.system_stack.stack.mlflow_url, self.spec, self.onnx)

    def alias(self, alias: str) -> int | None:
        from mlflow import MlflowClient

        from include.registry.aliases import current_alias

        url = self.system_stack.stack.mlflow_url
        return current_alias(MlflowClient(url, registry_uri=url), self.name, alias)

    def tags(self, version: int) -> dict[str, str]:
        from mlflow import MlflowClient

        url = self.system_stack.stack.mlflow_url
        return dict(MlflowClient(url, registry_uri=url).get_model_version(self.name, str(version)).tags)

    def hitl(self, run_id: str) -> dict[str, Any]:
        """The run's approval request and its answer, as the REST API shows them."""
        path = f"/api/v2/dags/{self.dag_id}/dagRuns/{run_id}/taskInstances/approve/-1/hitlDetails"
        return dict(self.system_stack.client.request("GET", path))

    def task_state(self, run_id: str, task_id: str = "approve") -> str | None:
        states = {t["task_id"]: t["state"] for t in self.system_stack.client.task_instances(self.dag_id, run_id)}
        return states.get(task_id)

    def wait_awaiting(self, run_id: str, timeout: float = 240.0) -> None:
        """Until the run's approval request waits for a person (task state ``awaiting_input``)."""
        deadline = time.monotonic() + timeout
        while (state := self.task_state(run_id)) != "awaiting_input":
            if state in ("failed", "skipped", "upstream_failed", "success") or time.monotonic() > deadline:
                client = self.system_stack.client
                raise AssertionError(
                    client.describe_run(self.dag_id, run_id, f"approve is {state}, not awaiting_input")
                )
            time.sleep(1)


def approval_model(system_stack: Any, flights_lake: Path, name: str, **gate: Any) -> ApprovalModel:
    """Add model ``name`` (``gate`` on top of the approval settings) to the running stack."""
    client, lake = system_stack.client, system_stack.lake
    data = yaml.safe_load((DEFAULT_SPECS_DIR / "flights.yaml").read_text())
    data["name"] = name
    data["gate"] = {**data.get("gate", {}), "approval_required": True, "min_roc_auc": 0.0, "bootstrap_samples": 20,
                    **gate}  # fmt: skip
    path = system_stack.home / "specs" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(path)
    copy_as(flights_lake, lake, name, EVALUATION_DAYS, (Zone.VALIDATED, Zone.LABELS))
    client.wait_for_dag(f"{name}__promote", timeout=240)
    for step in STEPS:
        if client.dag(f"{name}__{step}") is not None:
            client.pause(f"{name}__{step}")
    client.unpause(f"{name}__promote")
    return ApprovalModel(name, spec, flights_models(flights_lake).hgb, system_stack)
