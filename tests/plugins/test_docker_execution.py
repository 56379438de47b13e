"""execution="docker": the container request, and the same result as local mode.

The command is the step registry's (``include.steps.step_command``): these tests decode it back
into the step's parameters object and compare that object with the one the operator should
build, so they check values, not the spelling of a command line.

There is no Docker engine on the test machine, so the tests serve a small fake Engine API on
127.0.0.1 that implements what docker-py and the Docker provider call (ping, version, images,
create, attach with the multiplexed stream format, start, wait, logs, inspect, delete). The
fake either replays scripted output, or runs the container's ``Cmd`` with the container's
``Env`` as a local process: the second mode proves that the command the operator sends,
executed for real, writes the same files and returns the same result as local mode.

The MLflow steps' parity test (train, score, publish) starts a real MLflow server and is marked
``system``: ``pytest tests/plugins/test_docker_execution.py -m "not system"`` takes well under
two minutes, ``make test`` runs everything.
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airloop.assets import model_asset
from airloop.execution import (
    DEFAULT_IMAGE,
    STEP_ENTRYPOINT,
    ExecutionConfigError,
    StepResultError,
    parse_step_result,
    resolve_execution,
)
from airloop.operators.ingest import ReplayIngestOperator
from airloop.operators.train import TrainModelOperator
from airloop.operators.validate import ContractViolation, ValidateDataOperator
from include import steps
from include.datasets.ingest import land_day
from include.lake import Lake, Zone
from include.spec import get_spec
from tests.process import run

ROOT = Path(__file__).resolve().parents[2]
DS = date(2013, 1, 4)
CONTAINER_ID = "0123456789ab"
# What a step container must not inherit from the test process: it gets them from its Env only.
HOST_ONLY = ("AIRLOOP_LAKE_URI", "MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass
class FakeEngine:
    """State of the fake Docker engine: what was asked, and what the 'container' prints."""

    url: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    exit_code: int = 0
    run_for_real: bool = False
    started: threading.Event = field(default_factory=threading.Event)

    def run(self, body: dict[str, Any]) -> None:
        """Run the container's Cmd (``airloop ...``) locally with only its Env on top of a clean one."""
        cmd = list(body["Cmd"])
        assert cmd[0] == "airloop"
        env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
        env.update(dict(item.split("=", 1) for item in body["Env"]))
        proc = run([sys.executable, "-m", "include.cli", *cmd[1:]], cwd=ROOT, env=env, timeout=300)
        self.stdout = proc.stdout.splitlines()
        self.stderr = proc.stderr.splitlines()
        self.exit_code = proc.returncode

    def frames(self) -> bytes:
        # stdout first, then the logs: a log line may come after the result, as it can for real.
        out = b""
        for stream, lines in ((1, self.stdout), (2, self.stderr)):
            for line in lines:
                payload = (line + "\n").encode()
                out += struct.pack(">BxxxL", stream, len(payload)) + payload
        return out


def _handler(engine: FakeEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _path(self) -> tuple[str, dict[str, list[str]]]:
            parsed = urlparse(self.path)
            return re.sub(r"^/v[0-9.]+", "", parsed.path), parse_qs(parsed.query)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def _send(self, status: int, payload: Any = None, content_type: str = "application/json") -> None:
            data = b"" if payload is None else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, _ = self._path()
            engine.calls.append(("GET", path))
            if path == "/_ping":
                self._send(200, b"OK", "text/plain")
            elif path == "/version":
                self._send(200, {"ApiVersion": "1.45", "MinAPIVersion": "1.24", "Version": "27.0.0-fake"})
            elif path == "/images/json":
                self._send(200, [{"Id": "sha256:feed", "RepoTags": ["airloop:test"]}])
            elif path.startswith("/images/") and path.endswith("/json"):
                self._send(200, {"Id": "sha256:feed"})
            elif path == f"/containers/{CONTAINER_ID}/json":
                state = {"Running": False, "ExitCode": engine.exit_code, "Status": "exited"}
                self._send(200, {"Id": CONTAINER_ID, "Config": {"Tty": False}, "State": state})
            elif path == f"/containers/{CONTAINER_ID}/logs":
                self._send(200, engine.frames(), "application/vnd.docker.multiplexed-stream")
            else:
                self._send(404, {"message": f"fake engine: no GET {path}"})

        def do_POST(self) -> None:
            path, _ = self._path()
            body = self._body()
            engine.calls.append(("POST", path))
            if path == "/images/create":
                self._send(200, b'{"status":"pulled"}\n')
            elif path == "/containers/create":
                engine.created.append(body)
                self._send(201, {"Id": CONTAINER_ID, "Warnings": []})
            elif path == f"/containers/{CONTAINER_ID}/attach":
                # The stream stays open until the container exits, like the real engine's.
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.flush()
                engine.started.wait(timeout=300)
                self.wfile.write(engine.frames())
                self.wfile.flush()
                self.close_connection = True
            elif path == f"/containers/{CONTAINER_ID}/start":
                if engine.run_for_real:
                    engine.run(engine.created[-1])
                engine.started.set()
                self._send(204)
            elif path == f"/containers/{CONTAINER_ID}/wait":
                engine.started.wait(timeout=300)
                self._send(200, {"StatusCode": engine.exit_code, "Error": None})
            else:
                self._send(404, {"message": f"fake engine: no POST {path}"})

        def do_DELETE(self) -> None:
            path, _ = self._path()
            engine.calls.append(("DELETE", path))
            self._send(204)

    return Handler


@pytest.fixture()
def engine() -> Iterator[FakeEngine]:
    state = FakeEngine()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"tcp://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(try_number=1, dag_id="flights__test", task_id="t")
    return {"ti": ti, "run_id": "manual__2013-01-04", "outlet_events": OutletEventAccessors(), **extra}


def _env(request: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in request["Env"])


def _decoded(request: dict[str, Any]) -> tuple[str, steps.StepParams]:
    """The step and parameters object a container request runs (``airloop step <name> --params``)."""
    cmd = request["Cmd"]
    assert cmd[:2] == ["airloop", "step"] and cmd[3] == "--params" and len(cmd) == 5, cmd
    return cmd[2], steps.get_step(cmd[2]).parse(cmd[4])


# ------------------------------------------------------------------------------------------ units


def test_execution_setting_is_checked_and_defaults_to_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRLOOP_EXECUTION", raising=False)
    assert resolve_execution(None) == "local"
    monkeypatch.setenv("AIRLOOP_EXECUTION", "docker")
    assert resolve_execution(None) == "docker"
    assert resolve_execution("local") == "local"
    with pytest.raises(ExecutionConfigError, match="execution='kubernetes': use one of local, docker"):
        ReplayIngestOperator(task_id="t", model="flights", execution="kubernetes")


def test_result_is_the_last_json_object_line() -> None:
    lines = ["INFO starting", '{"rows": 1}', '{"rows": 915, "ds": "2013-01-04"}', "INFO done {not json}", b"bye"]
    assert parse_step_result(lines) == {"rows": 915, "ds": "2013-01-04"}
    assert parse_step_result('x\n{"a": [1]}\n') == {"a": [1]}
    with pytest.raises(StepResultError, match="printed no JSON result"):
        parse_step_result(["[1, 2]", "Traceback (most recent call last):"])


# --------------------------------------------------------------------------- the container request


def test_docker_ingest_sends_the_step_and_returns_what_the_container_printed(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRLOOP_IMAGE", raising=False)
    monkeypatch.setenv("AIRLOOP_DOCKER_NETWORK", "airloop_default")
    lake_uri = (tmp_path / "lake").as_uri()
    printed = {
        "model": "flights",
        "ds": "2013-01-04",
        "rows": 915,
        "landing_uri": f"{lake_uri}/landing/flights/ds=2013-01-04/data.parquet",
        "label_ds": "2013-01-02",
        "label_rows": 928,
        "unlabeled_rows": 0,
        "labels_uri": None,
    }
    engine.stdout = [json.dumps(printed)]
    engine.stderr = ["2026-11-22 INFO airloop: landed 915 rows"]
    op = ReplayIngestOperator(
        task_id="land", model="flights", ds="2013-01-04", lake_uri=lake_uri, execution="docker", docker_url=engine.url
    )
    ctx = _context()
    summary = op.execute(ctx)  # type: ignore[arg-type]

    assert summary == printed
    assert ctx["outlet_events"][model_asset("flights", "landing")].extra == {
        "partition": "2013-01-04",
        "rows": 915,
        "label_partition": "2013-01-02",
        "label_rows": 928,
    }
    (request,) = engine.created
    assert request["Image"] == DEFAULT_IMAGE == "airloop:0.1.0"
    assert _decoded(request) == ("ingest", steps.IngestParams(spec="flights", ds=DS))
    assert request["Entrypoint"] == STEP_ENTRYPOINT
    assert _env(request) == {"AIRLOOP_LAKE_URI": lake_uri}  # no AIRFLOW_TMP_DIR: nothing mounted
    host = request["HostConfig"]
    assert host["NetworkMode"] == "airloop_default"
    assert not host.get("Mounts") and not host.get("Binds")  # mount_tmp_dir=False
    # auto_remove="success": the provider creates the container with AutoRemove off and deletes
    # it itself when it is done with it.
    assert host.get("AutoRemove", False) is False
    assert engine.calls[-1] == ("DELETE", f"/containers/{CONTAINER_ID}")
    assert ("POST", "/images/create") not in engine.calls  # the image is there: no pull
    assert not Lake(lake_uri).has_partition(Zone.LANDING, "flights", DS)  # the container's job, not ours


def test_docker_train_sends_uris_in_env_and_secrets_never_in_the_command(
    engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "aws",
        "login": "AKIAFAKEKEY",
        "password": "s3cr3t-Value-42",
        "extra": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_LAKE_S3", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "http", "host": "mlflow", "port": 5000}))
    printed = {
        "model": "flights",
        "run_id": "r123",
        "experiment_id": "7",
        "metrics": {"roc_auc": 0.712345678},
        "version": 4,
        "end_date": "2013-01-20",
        "reason": "manual: docker",
    }
    engine.stdout = ["not json", json.dumps(printed)]
    op = TrainModelOperator(
        task_id="train",
        model="flights",
        data_end="2013-01-20",
        search_budget="2",
        reason="docker",
        lake_uri="s3://lake-bucket/lake",
        lake_conn_id="lake_s3",
        mlflow_conn_id="mlflow_test",
        execution="docker",
        image="airloop:test",
        docker_url=engine.url,
        network_mode="airloop_net",
    )
    ctx = _context(dag_run=SimpleNamespace(run_type="manual"))
    summary = op.execute(ctx)  # type: ignore[arg-type]

    assert summary == printed
    assert op.report_links == {
        "mlflow_run": "http://mlflow:5000/#/experiments/7/runs/r123",
        "model_version": "http://mlflow:5000/#/models/flights/versions/4",
    }
    assert ctx["outlet_events"][model_asset("flights", "challenger")].extra == {
        "version": 4,
        "run_id": "r123",
        "metrics": {"roc_auc": 0.712346},
        "end_date": "2013-01-20",
    }
    (request,) = engine.created
    cmd = request["Cmd"]
    assert request["Image"] == "airloop:test" and request["HostConfig"]["NetworkMode"] == "airloop_net"
    name, params = _decoded(request)
    assert name == "train" and isinstance(params, steps.TrainParams)
    assert (params.end, params.reason, params.search_budget) == (date(2013, 1, 20), "manual: docker", 2)
    assert (params.window_days, params.estimator, params.decisions) == (None, None, [])
    assert params.tags["airloop.step"] == "train" and params.tags["airloop.dag_run_id"] == "manual__2013-01-04"
    assert _env(request) == {
        "AIRLOOP_LAKE_URI": "s3://lake-bucket/lake",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_S3": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "AKIAFAKEKEY",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-Value-42",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    }
    assert "s3cr3t" not in json.dumps(cmd) and "AKIAFAKEKEY" not in json.dumps(cmd)


def test_failed_container_without_a_result_fails_the_task(engine: FakeEngine, tmp_path: Path) -> None:
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    engine.stderr = ["Traceback (most recent call last):", "KeyError: 'boom'"]
    engine.exit_code = 1
    op = ReplayIngestOperator(
        task_id="land", model="flights", ds="2013-01-04", lake_uri=(tmp_path / "l").as_uri(), execution="docker"
    )
    op.docker_url = engine.url
    with pytest.raises(DockerContainerFailedException, match="StatusCode': 1"):
        op.execute(_context())  # type: ignore[arg-type]
    # Provider 4.6.1 removes an auto_remove="success" container in a `finally`, failed or not:
    # the output survives in the task log (every container line is logged), not in `docker logs`.
    assert engine.calls[-1] == ("DELETE", f"/containers/{CONTAINER_ID}")


def test_every_step_operator_sends_its_command_and_uses_the_printed_result(
    engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry, scoring and monitoring operators: the parameters their command carries, and
    XCom/events/links from the printed JSON."""
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from airloop.operators.monitor import MonitorDriftOperator
    from airloop.operators.promote import EvaluateChallengerOperator, PromoteModelOperator, RollbackOperator
    from airloop.operators.rescore import RescoreDayOperator, RescorePlanOperator
    from airloop.operators.score import (
        BatchScoreOperator,
        PinChampionOperator,
        PublishPredictionsOperator,
        ShadowScoreOperator,
    )

    monkeypatch.setenv("AIRLOOP_EXECUTION", "docker")  # the deployment-wide switch
    monkeypatch.setenv("AIRLOOP_DOCKER_URL", engine.url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    lake = Lake((tmp_path / "lake").as_uri())
    for zone in (Zone.VALIDATED, Zone.PREDICTIONS):  # the partitions the operators wait for
        lake.write_partition(zone, "flights", DS, pa.table({"flight_id": [1]}))
    report_uri = f"{lake.uri}/reports/flights/gate/d1.json"
    gate = {"decision": {"summary": "promote v5", "promote": True, "decision_id": "d1"}, "report_json_uri": report_uri}
    gate["report_html_uri"] = report_uri.replace(".json", ".html")
    shard = {"ds": "2013-01-04", "version": 5, "run_key": "r1", "index": 0, "start": 0, "end": 900, "n_shards": 1}
    run_after = datetime(2013, 1, 4, 6, tzinfo=UTC)
    rescore_day = {"ds": "2013-01-04", "version": 3, "replaces": 5, "reason": "bad day"}
    common = {"model": "flights", "lake_uri": lake.uri}
    ledger = {"now": run_after, "dag_id": "flights__test", "run_id": "manual__2013-01-04"}
    cases: list[tuple[Any, dict[str, Any], steps.StepParams]] = [
        (
            EvaluateChallengerOperator(task_id="evaluate", mode="dry_run", **common),
            gate,
            steps.EvaluateParams(spec="flights", mode="dry_run", report_key="manual__2013-01-04"),
        ),
        (
            PromoteModelOperator(task_id="promote", report=gate, **common),
            {"promoted": True, "action": "promote", "version": 5, "champion": 4, "model_card": None},
            steps.PromoteParams(spec="flights", report_uri=report_uri, approval=None, **ledger),
        ),
        (
            RollbackOperator(task_id="rollback", target_version="3", reason="bad day", **common),
            {"version": 3, "previous_version": 5, "reason": "bad day"},
            steps.RollbackParams(spec="flights", target_version=3, reason="bad day", **ledger),
        ),
        (
            RescorePlanOperator(task_id="rescore_plan", version="3", previous_version="5", **common),
            {
                "version": 3,
                "previous_version": 5,
                "reason": "bad day",
                "rollback_time": "t",
                "since": "s",
                "days": [rescore_day],
            },  # fmt: skip
            steps.RescorePlanParams(spec="flights", version=3, previous_version=5),
        ),
        (
            RescoreDayOperator(task_id="rescore", day=rescore_day, **common),
            {
                "ds": "2013-01-04",
                "model_version": 3,
                "rows_scored": 899,
                "rows_rejected": 1,
                "rescored": True,
                "supersedes": {"model_version": 5, "archive": "a"},
            },  # fmt: skip
            steps.RescoreParams(
                spec="flights",
                ds=DS,
                version=3,
                replaces=5,
                reason="bad day",
                run_key="manual__2013-01-04",
                run_id="manual__2013-01-04",
                now=run_after,
            ),  # fmt: skip
        ),
        (
            PinChampionOperator(task_id="pin", ds="2013-01-04", **common),
            {"version": 5, "rows": 900, "shards": [shard]},
            steps.PinParams(spec="flights", ds=DS, run_key="manual__2013-01-04"),
        ),
        (
            BatchScoreOperator(task_id="score", ds="2013-01-04", shard=shard, **common),
            {"rows_scored": 899, "rows_rejected": 1, "rows_per_s": 1e5},
            steps.ScoreParams(spec="flights", run_id="manual__2013-01-04", **shard),
        ),
        (
            PublishPredictionsOperator(task_id="publish", ds="2013-01-04", plan=[shard], **common),
            {"rows_scored": 899, "rows_rejected": 1},
            steps.PublishParams(spec="flights", ds=DS, run_key="r1", n_shards=1),
        ),
        (
            MonitorDriftOperator(task_id="monitor", ds="2013-01-04", **common),
            {
                "partition": "2013-01-04",
                "model_version": 5,
                "verdict": {"state": "ok", "circuit_open": False, "reasons": []},
                "score": 0.01,
                "report_uri": f"{lake.uri}/reports/flights/drift/ds=2013-01-04.html",
                "record_uri": f"{lake.uri}/reports/flights/drift/ds=2013-01-04.json",
                "performance": None,
            },
            steps.MonitorParams(spec="flights", ds=DS),
        ),
    ]
    results = {}
    for op, printed, expected in cases:
        engine.created.clear()
        engine.started.clear()
        engine.stdout = [json.dumps(printed)]
        ctx = _context(dag_run=SimpleNamespace(run_type="manual", run_after=run_after))
        results[op.task_id] = (op.execute(ctx), ctx["outlet_events"], op)
        (request,) = engine.created
        assert _decoded(request) == (op.step, expected), op.task_id
        assert request["Cmd"] == steps.step_command(op.step, expected), op.task_id
        env = _env(request)
        assert env["AIRLOOP_LAKE_URI"] == lake.uri, op.task_id
        mlflow = steps.get_step(op.step).needs_mlflow
        assert env.get("MLFLOW_TRACKING_URI") == ("http://mlflow:5000" if mlflow else None), op.task_id
    assert [op.step for op, _, _ in cases] == [
        "evaluate", "promote", "rollback", "rescore-plan", "rescore", "pin", "score", "publish", "monitor"]  # fmt: skip
    assert results["evaluate"][0] == gate
    assert results["evaluate"][2].report_links["gate_report"].endswith("/reports/flights/gate/d1.html")
    assert results["promote"][1][model_asset("flights", "champion")].extra == {
        "version": 5,
        "previous_version": 4,
        "decision_id": "d1",
    }
    assert results["rollback"][1][model_asset("flights", "champion")].extra == {
        "version": 3,
        "previous_version": 5,
        "decision_id": "rollback:manual__2013-01-04",
        "rollback": True,
        "reason": "bad day",
    }
    assert results["rescore_plan"][0] == [rescore_day]
    assert results["rescore"][1][model_asset("flights", "predictions")].extra == {
        "partition": "2013-01-04", "rows": 899, "rejects": 1, "version": 3, "rescored": True, "supersedes": 5}  # fmt: skip
    assert results["pin"][0] == [shard]
    assert results["score"][0]["rows_scored"] == 899
    assert results["publish"][1][model_asset("flights", "predictions")].extra == {
        "partition": "2013-01-04",
        "rows": 899,
        "rejects": 1,
        "version": 5,
    }
    assert results["monitor"][0]["verdict"]["state"] == "ok"
    assert results["monitor"][2].report_links["drift_report"].endswith("/reports/flights/drift/ds=2013-01-04.html")

    # results that mean "skip" or "fail" cross the container boundary as results
    for op, printed, expected in (
        (
            ShadowScoreOperator(task_id="shadow", ds="2013-01-04", **common),
            {"skipped": "no challenger"},
            AirflowSkipException,
        ),
        (
            PinChampionOperator(task_id="pin", ds="2013-01-04", **common),
            {"failed": "no champion"},
            AirflowFailException,
        ),
    ):
        engine.started.clear()
        engine.stdout, engine.exit_code = [json.dumps(printed)], 1 if "failed" in printed else 0
        with pytest.raises(expected, match="no c"):
            op.execute(_context(dag_run=SimpleNamespace(run_type="manual", run_after=run_after)))


# ------------------------------------------------------------- the real command, the same outputs


def _normalised(value: Any, lake: Lake) -> Any:
    return json.loads(json.dumps(value, default=str).replace(lake.uri, "LAKE").replace(lake.root, "ROOT"))


def _files(lake: Lake) -> dict[str, int]:
    """Every file of the lake (relative path -> size), reports excluded (they carry timestamps)."""
    root = Path(lake.root)
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and not str(p.relative_to(root)).startswith(("reports", "_tmp"))
    }


def _tables(lake: Lake, zone: Zone) -> pa.Table:
    return lake.read_table(zone, "flights", DS)


def test_real_ingest_and_validate_commands_match_local_mode(engine: FakeEngine, tmp_path: Path) -> None:
    """Docker mode with the container's Cmd and Env run for real == local mode, file for file."""
    engine.run_for_real = True
    local_lake, docker_lake = Lake((tmp_path / "local").as_uri()), Lake((tmp_path / "docker").as_uri())
    results: dict[str, dict[str, Any]] = {}
    for name, lake, execution in (("local", local_lake, "local"), ("docker", docker_lake, "docker")):
        ingest = ReplayIngestOperator(
            task_id="land", model="flights", ds=DS.isoformat(), lake_uri=lake.uri, execution=execution
        )
        validate = ValidateDataOperator(
            task_id="validate", model="flights", ds=DS.isoformat(), lake_uri=lake.uri, execution=execution
        )
        for op in (ingest, validate):
            op.docker_url = engine.url
        ictx, vctx = _context(), _context()
        landed = ingest.execute(ictx)  # type: ignore[arg-type]
        engine.started.clear()
        validated = validate.execute(vctx)  # type: ignore[arg-type]
        results[name] = {
            "ingest": _normalised(landed, lake),
            "validate": _normalised(validated, lake),
            "ingest_event": ictx["outlet_events"][model_asset("flights", "landing")].extra,
            "validate_event": _normalised(vctx["outlet_events"][model_asset("flights", "validated")].extra, lake),
            "links": sorted(validate.report_links),
            "files": _files(lake),
        }
    decoded = [_decoded(c) for c in engine.created]
    assert decoded == [
        ("ingest", steps.IngestParams(spec="flights", ds=DS)),
        ("validate", steps.ValidateParams(spec="flights", ds=DS, run_key="manual__2013-01-04__try1")),
    ]
    assert results["docker"] == results["local"]
    assert results["local"]["ingest"]["rows"] == 915 and results["local"]["validate"]["passed"] is True
    for name in ("ingest", "validate"):  # what the registry says every result carries
        assert set(steps.get_step(name).result) <= set(results["local"][name]), name
    assert results["local"]["validate"]["validated_uri"] == "LAKE/validated/flights/ds=2013-01-04/data.parquet"
    assert "validated/flights/ds=2013-01-04/data.parquet" in results["docker"]["files"]
    assert _tables(docker_lake, Zone.VALIDATED).equals(_tables(local_lake, Zone.VALIDATED))
    assert _tables(docker_lake, Zone.VALIDATED).num_rows == 915


def test_broken_contract_in_docker_mode_quarantines_and_fails_like_local(engine: FakeEngine, tmp_path: Path) -> None:
    engine.run_for_real = True
    lake = Lake((tmp_path / "lake").as_uri())
    land_day(get_spec("flights"), lake, DS)
    table = lake.read_table(Zone.LANDING, "flights", DS)
    lake.write_partition(Zone.LANDING, "flights", DS, pa.concat_tables([table, table.slice(0, 5)]))
    op = ValidateDataOperator(
        task_id="validate", model="flights", ds=DS.isoformat(), lake_uri=lake.uri, execution="docker"
    )
    op.docker_url = engine.url
    with pytest.raises(ContractViolation) as err:
        op.execute(_context())  # type: ignore[arg-type]
    assert engine.exit_code == 1  # `airloop validate` exits 1 on a broken contract, after printing the result
    message = str(err.value)
    assert "flights 2013-01-04 broke its data contract: unique:flight_id" in message
    assert "quarantine/flights/ds=2013-01-04/manual__2013-01-04__try1" in message
    assert not lake.has_partition(Zone.LANDING, "flights", DS)
    folder = lake.quarantine_dir("flights", DS, "manual__2013-01-04__try1")
    assert lake.parquet_file(f"{folder}/data.parquet").metadata.num_rows == table.num_rows + 5
    assert op.report_links["data_docs"].endswith(".html")


@pytest.mark.slow  # a real MLflow server and three real training/scoring processes: ~1.5-3 min here
def test_real_train_score_publish_commands_match_local_mode(
    engine: FakeEngine, tmp_path: Path, flights_lake: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The MLflow steps: the same training (metrics, params, window, data hash) and the same predictions."""
    import shutil

    from airloop.operators.score import BatchScoreOperator, PublishPredictionsOperator
    from include.scoring.shards import count_rows

    # From the Airflow connection, as in production. (Not MLFLOW_TRACKING_URI: an in-process training
    # unsets that variable, MLflow's _use_tracking_uri restores a None global by unsetting it.)
    host, port = mlflow_server.removeprefix("http://").split(":")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "http", "host": host, "port": int(port)})
    )
    engine.run_for_real = True
    day = date(2013, 1, 22)
    lakes = {mode: Lake(shutil.copytree(flights_lake, tmp_path / mode).as_uri()) for mode in ("local", "docker")}
    deterministic = ("model", "estimator", "params", "metrics", "window", "counts", "data_hash", "end_date", "reason")
    trained: dict[str, dict[str, Any]] = {}
    for mode, lake in lakes.items():
        engine.started.clear()
        op = TrainModelOperator(
            task_id="train",
            model="flights",
            data_end="2013-01-20",
            window_days="14",
            search_budget="1",
            estimator="logistic_regression",
            reason="parity",
            lake_uri=lake.uri,
            execution=mode,
            docker_url=engine.url,
        )
        ctx = _context(dag_run=SimpleNamespace(run_type="manual"))
        trained[mode] = op.execute(ctx)  # type: ignore[arg-type]
        assert ctx["outlet_events"][model_asset("flights", "challenger")].extra["version"] == trained[mode]["version"]
        assert op.report_links["model_version"].endswith(f"/versions/{trained[mode]['version']}")
    assert _decoded(engine.created[0])[0] == "train"
    assert _env(engine.created[0])["MLFLOW_TRACKING_URI"] == mlflow_server
    assert trained["docker"]["version"] == trained["local"]["version"] + 1  # both registered, one after the other
    assert {k: trained["docker"][k] for k in deterministic} == {k: trained["local"][k] for k in deterministic}
    assert trained["local"]["metrics"]["roc_auc"] > 0.5 and trained["local"]["reason"] == "manual: parity"

    rows = count_rows(lakes["local"], get_spec("flights"), day)
    shard = {
        "ds": day.isoformat(),
        "version": trained["local"]["version"],
        "run_key": "manual__2013-01-22",
        "index": 0,
        "start": 0,
        "end": rows,
        "n_shards": 1,
    }
    scored: dict[str, dict[str, Any]] = {}
    for mode, lake in lakes.items():
        common = {"model": "flights", "ds": day.isoformat(), "lake_uri": lake.uri, "execution": mode}
        engine.started.clear()
        score = BatchScoreOperator(task_id="score", shard=shard, docker_url=engine.url, **common)
        report = score.execute(_context())  # type: ignore[arg-type]
        engine.started.clear()
        publish = PublishPredictionsOperator(task_id="publish", plan=[shard], docker_url=engine.url, **common)
        ctx = _context()
        manifest = publish.execute(ctx)  # type: ignore[arg-type]
        volatile = ("seconds", "rows_per_s", "peak_rss_mb")
        scored[mode] = {
            "report": _normalised({k: v for k, v in report.items() if k not in volatile}, lake),
            "manifest_rows": (manifest["rows_scored"], manifest["rows_rejected"]),
            "event": ctx["outlet_events"][model_asset("flights", "predictions")].extra,
        }
    assert [_decoded(c)[0] for c in engine.created[1:]] == ["score", "publish"]
    assert scored["docker"] == scored["local"]
    assert scored["local"]["report"]["rows_scored"] + scored["local"]["report"]["rows_rejected"] == rows
    predictions = {mode: lake.read_table(Zone.PREDICTIONS, "flights", day) for mode, lake in lakes.items()}
    assert predictions["docker"].num_rows == scored["local"]["manifest_rows"][0] > 0
    assert predictions["docker"].equals(predictions["local"])
