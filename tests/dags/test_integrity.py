"""DAG integrity: every DAG file loads, carries its metadata, parses fast and imports nothing heavy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from include.names import HEAVY_MODULES

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
MANUAL_ONLY = ("__rollback", "__replay", "__breaker_reset")  # DAGs that are deliberately schedule=None


def _dagbag(specs_dir: Path | None = None):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    if specs_dir is not None:
        os.environ["AIRLOOP_SPECS_DIR"] = str(specs_dir)
    try:
        return DagBag(dag_folder=str(DAGS))
    finally:
        os.environ.pop("AIRLOOP_SPECS_DIR", None)


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    return _dagbag()


def test_no_import_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert "flights__ingest" in dagbag.dag_ids


def test_every_dag_carries_its_metadata(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.dags
    for dag_id, dag in dagbag.dags.items():
        model, _, step = dag_id.partition("__")
        assert {"airloop", model, step} <= set(dag.tags), dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag_id
        assert dag.description, dag_id
        assert dag.on_failure_callback, dag_id
        if not dag_id.endswith(MANUAL_ONLY):
            assert dag.schedule is not None, dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 1, (dag_id, task.task_id)
            assert task.retry_delay.total_seconds() > 0, (dag_id, task.task_id)
            assert task.on_failure_callback, (dag_id, task.task_id)


def test_ingest_dag_wiring(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["flights__ingest"]
    assert dag.schedule == "@daily"
    assert dag.start_date.date().isoformat() == "2013-01-01"
    assert dag.catchup is False
    (task,) = dag.tasks
    assert [a.uri for a in task.outlets] == ["x-airloop://flights/landing"]


DAG_FILES = sorted(p.name for p in DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def parse_probe() -> dict[str, dict[str, object]]:
    """Each DAG file parsed as the dag-processor parses it: one process imports Airflow, then
    forks a fresh child per file, which times the file's import and lists the heavy modules it
    loaded (one Airflow import for all files instead of one per file)."""
    probe = f"""
import importlib.util, json, os, sys, time, traceback
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "plugins")!r}]
import airflow.sdk  # the dag-processor has this loaded already
results = {{}}
for name in {DAG_FILES!r}:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            start = time.perf_counter()
            spec = importlib.util.spec_from_file_location("probe_dag", os.path.join({str(DAGS)!r}, name))
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            elapsed = time.perf_counter() - start
            payload = {{"seconds": elapsed, "heavy": [m for m in {HEAVY_MODULES!r} if m in sys.modules]}}
        except BaseException:
            payload = {{"error": traceback.format_exc()[-2000:]}}
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(payload))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        results[name] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(results))
"""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    results: dict[str, dict[str, object]] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_dag_file_parses_fast_without_heavy_imports(dag_file: str, parse_probe: dict[str, dict[str, object]]) -> None:
    """Measured as the dag-processor sees it: Airflow is already imported; the file itself < 1 s."""
    result = parse_probe[dag_file]
    assert "error" not in result, result.get("error")
    assert result["heavy"] == [], f"{dag_file} imported {result['heavy']} at parse time"
    assert isinstance(result["seconds"], float)
    assert result["seconds"] < 1.0, f"{dag_file} took {result['seconds']:.2f}s to parse"


def test_heavy_modules_are_the_ones_ruff_bans_at_module_level() -> None:
    """The parse-time probe and ruff TID253 check the same list of modules."""
    import tomllib

    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert list(HEAVY_MODULES) == ruff["flake8-tidy-imports"]["banned-module-level-imports"]


def test_broken_spec_is_an_import_error_of_its_own_file_only(tmp_path: Path) -> None:
    shutil.copy(ROOT / "include" / "specs" / "flights.yaml", tmp_path / "flights.yaml")
    broken = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    broken["name"] = "broken"
    broken["dataset"]["label_delay_days"] = -3
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    bag = _dagbag(tmp_path)
    assert list(bag.import_errors) == [str(DAGS / "airloop_specs.py")]
    message = bag.import_errors[str(DAGS / "airloop_specs.py")]
    assert (
        f"{tmp_path / 'broken.yaml'}: dataset.label_delay_days: expected input should be greater than or equal to 0"
        in message
    )
    assert "flights__ingest" in bag.dag_ids and "broken__ingest" not in bag.dag_ids


def test_every_dag_serializes(dagbag) -> None:  # type: ignore[no-untyped-def]
    """The dag-processor stores serialized DAGs: a field that cannot serialize is an import error there."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id, dag in dagbag.dags.items():
        data = DagSerialization.to_dict(dag)
        assert data["dag"]["dag_id"] == dag_id


@pytest.mark.parametrize("step", ["train", "promote", "rollback", "rescore", "replay", "breaker_reset"])
def test_manual_trigger_params_are_documented_and_bounded(dagbag, step: str) -> None:  # type: ignore[no-untyped-def]
    """The trigger form of every manual action: each Param has a title, a description, and an
    enum or bounds (integers: minimum; strings: enum, format or a maximum length)."""
    dag = dagbag.dags[f"flights__{step}"]
    params = {key: dag.params.get_param(key) for key in dag.params}
    assert params, step
    for key, param in params.items():
        schema = param.schema
        assert schema.get("title"), (step, key)
        assert len(param.description or "") > 20, (step, key)
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if "integer" in kinds:
            assert "minimum" in schema, (step, key)
        if "string" in kinds:
            assert {"enum", "format", "maxLength"} & set(schema), (step, key)
        if "enum" in schema:
            assert set(schema.get("values_display", {})) == set(schema["enum"]), (step, key)
        if "minLength" not in schema:  # a required text (rollback reason) has no valid default
            param.resolve(param.value)
    expected = {
        "train": {"window_days", "search_budget", "estimator", "reason"},
        "promote": {"mode"},
        "rollback": {"target_version", "reason"},
        "rescore": {"version", "previous_version"},
        "breaker_reset": {"by", "reason"},
        "replay": {"start", "end", "policies", "calendar_days", "search_budget", "window_days"},
    }
    assert expected[step] <= set(params)


def test_rescore_runs_on_champion_events_and_maps_over_the_planned_days(dagbag) -> None:  # type: ignore[no-untyped-def]
    """A rollback's champion event starts ``__rescore``: one mapped re-score task per planned day."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    dag = dagbag.dags["flights__rescore"]
    assert dag.timetable.asset_condition.name == "flights.champion"
    assert dag.max_active_runs == 1
    rescore = dag.get_task("rescore")
    day = rescore.expand_input.value["day"]
    assert isinstance(day, PlainXComArg) and day.operator.task_id == "plan"
    assert rescore.upstream_task_ids == {"plan"}
    assert [a.name for a in rescore.partial_kwargs["outlets"]] == ["flights.predictions"]


def test_a_train_trigger_without_a_reason_records_no_reason_given(dagbag) -> None:  # type: ignore[no-untyped-def]
    """Reason is optional (its type allows null, so the form does not require it); the DAG renders
    templates as native objects, so an empty reason reaches the operator as None, not "None"."""
    from types import SimpleNamespace

    from airloop.context import trigger_reason

    dag = dagbag.dags["flights__train"]
    param = dag.params.get_param("reason")
    assert param.resolve(None) is None and param.resolve("drift on weekends") == "drift on weekends"
    (task,) = dag.tasks
    rendered = dag.get_template_env().from_string(task.reason).render(params={"reason": None})
    assert rendered is None
    manual = {"dag_run": SimpleNamespace(run_type="manual")}
    assert trigger_reason(manual, rendered) == "manual: no reason given"
    assert trigger_reason(manual, "drift on weekends") == "manual: drift on weekends"


def test_results_flow_between_tasks_through_outputs(tmp_path: Path) -> None:
    """Each task that reads another's result gets it as that task's ``.output`` (an XComArg),
    which also makes it a dependency; the gate with approval reads the approval's output too."""
    from airflow.sdk.definitions.xcom_arg import PlainXComArg

    spec = yaml.safe_load((ROOT / "include" / "specs" / "flights.yaml").read_text())
    spec["gate"]["approval_required"] = True
    (tmp_path / "flights.yaml").write_text(yaml.safe_dump(spec))
    bag = _dagbag(tmp_path)
    assert bag.import_errors == {}

    def source(value: object) -> str:
        assert isinstance(value, PlainXComArg), value
        return value.operator.task_id

    publish = bag.dags["flights__score"].get_task("publish")
    assert source(publish.plan) == "pin_champion" and publish.upstream_task_ids == {"pin_champion", "score"}
    signal = bag.dags["flights__monitor"].get_task("signal_retrain")
    assert source(signal.summary) == "monitor" and signal.upstream_task_ids == {"monitor"}
    dag = bag.dags["flights__promote"]
    approve, promote = dag.get_task("approve"), dag.get_task("promote")
    assert source(approve.report) == "evaluate" and approve.upstream_task_ids == {"evaluate"}
    assert (source(promote.report), source(promote.approval)) == ("evaluate", "approve")
    assert promote.upstream_task_ids == {"evaluate", "approve"} and promote.approval_required is True
    # the spec's deadline reaches the request; a waiting run leaves room for a newer challenger's
    assert approve.approval_timeout == timedelta(hours=72) and approve.execution_timeout is None
    assert dag.max_active_runs == 2
