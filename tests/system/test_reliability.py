"""Reliability under failure (issue 11): kills mid-write, duplicate delivery, a flaky S3 endpoint.

Everything here uses real parts: the lake on ``file://`` and on moto's S3 HTTP server, real
onnxruntime models trained on the flights demo, real child processes killed with SIGKILL while
they pause inside a write, real threads/processes delivering the same task twice, and a small
fault-injecting HTTP proxy (:class:`FaultProxy`) in front of moto (and, in
``test_reliability_registry.py``, in front of the MLflow server).

Each test states what must hold afterwards: readers never see a partial partition, a rerun
completes and is idempotent, nothing is duplicated, an error names what failed.
The helpers at the top are shared with the other ``test_reliability_*.py`` files.
See docs/reliability.md for the table of guarantees.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from include.lake import Lake, LakeError, S3Options, Zone
from include.spec import ModelSpec, get_spec

pytestmark = pytest.mark.slow  # real parts in-process, no Airflow stack: make test runs it on every core

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_spec("flights")
NUMERIC = SPEC.dataset.features.numeric
CATEGORICAL = SPEC.dataset.features.categorical
KEY = "flight_id"
TRAIN_DAYS = [date(2013, 1, d) for d in range(1, 9)]
DAY = date(2013, 1, 10)


# =========================================================================== shared helpers


class FaultProxy:
    """A tiny HTTP proxy in front of a real server that can fail chosen requests.

    ``rule(method, path, headers, n)`` (``n`` counts requests from 1) returns ``None`` to forward
    the request, an HTTP status (answered with an S3-style XML error body, which is also what an
    overloaded load balancer in front of MLflow looks like), or ``"drop"`` to close the
    connection without an answer. Request bodies (plain or chunked) are read and forwarded byte
    for byte, so signed S3 requests stay valid. ``log`` records ``(method, path, status)``.
    """

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.rule: Callable[[str, str, Any, int], int | str | None] | None = None
        self.log: list[tuple[str, str, int | str]] = []
        self.count = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    raw = b""
                    while True:
                        line = self.rfile.readline()
                        raw += line
                        size = int(line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while True:
                                trailer = self.rfile.readline()
                                raw += trailer
                                if trailer in (b"\r\n", b"\n", b""):
                                    return raw
                        raw += self.rfile.read(size + 2)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                body = self._body()
                with proxy.lock:  # rules count their faults: one request at a time decides
                    proxy.count += 1
                    n = proxy.count
                    verdict = proxy.rule(self.command, self.path, self.headers, n) if proxy.rule else None
                self.close_connection = True
                if verdict == "drop":
                    proxy.log.append((self.command, self.path, "drop"))
                    return
                if isinstance(verdict, int):
                    code = {500: "InternalError", 503: "SlowDown", 403: "InvalidAccessKeyId"}.get(verdict, "Error")
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>injected by FaultProxy</Message><RequestId>fault{n}</RequestId></Error>"
                    ).encode()
                    # Log before answering: the client may act on the answer (and a test
                    # read the log) before this thread runs again.
                    proxy.log.append((self.command, self.path, verdict))
                    self.send_response_only(verdict)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.host, proxy.port, timeout=120)
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in ("expect", "connection"):
                        upstream.putheader(name, value)
                upstream.endheaders()
                if body:
                    upstream.send(body)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                proxy.log.append((self.command, self.path, response.status))
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() in ("transfer-encoding", "connection"):
                        continue
                    if name.lower() == "content-length" and self.command != "HEAD":
                        continue
                    self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    try:
        yield proxy
    finally:
        proxy.close()


CHILD_HEADER = f"""
import json, os, sys, time
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "plugins")!r}]
ARGS = json.loads(sys.argv[1])

def pause_here(tag):
    # Tell the parent where we are, then hang until SIGKILLed.
    with open(ARGS["flag"] + ".part", "w") as handle:
        handle.write(tag)
    os.replace(ARGS["flag"] + ".part", ARGS["flag"])
    time.sleep(600)

def wait_go():
    # say we are ready (imports done), then wait for the parent's go: the children race for real
    open("%s.%d.ready" % (ARGS["go"], os.getpid()), "w").close()
    while not os.path.exists(ARGS["go"]):
        time.sleep(0.005)
"""


def release(go: Path, children: list[subprocess.Popen[str]], timeout: float = 180.0) -> None:
    """Touch ``go`` once every child has reached ``wait_go()`` (their imports can take seconds
    under load: a fixed sleep let them run one after the other, and the race went untested)."""
    deadline = time.monotonic() + timeout
    while len(list(go.parent.glob(f"{go.name}.*.ready"))) < len(children):
        for child in children:
            if child.poll() is not None:
                raise AssertionError(f"a child exited before it was ready:\n{child.communicate()[1]}")
        assert time.monotonic() < deadline, "the children never got ready"
        time.sleep(0.02)
    go.touch()


def start_child(body: str, **args: Any) -> subprocess.Popen[str]:
    """A fresh Python process running ``body`` (``ARGS`` holds ``args``)."""
    code = CHILD_HEADER + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args, default=str)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def kill_when_paused(proc: subprocess.Popen[str], flag: Path, timeout: float = 180.0) -> str:
    """Wait until the child signals it is paused mid-write, SIGKILL it, return where it paused."""
    deadline = time.monotonic() + timeout
    while not flag.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"child exited with {proc.returncode} before pausing:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("child never reached its pause point")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return flag.read_text()


def finish(proc: subprocess.Popen[str], timeout: float = 180.0) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


@dataclass
class Models:
    hgb: bytes
    lr: bytes


_CACHE: dict[str, Any] = {}


def flights_models(flights_lake: Path) -> Models:
    """HistGradientBoosting and logistic regression trained on 8 flights days, as ONNX (cached)."""
    if "models" not in _CACHE:
        import pandas as pd

        from include.training.onnx_export import build_pipeline, export_onnx, prepare_features

        lake = Lake(flights_lake.as_uri())
        frames = []
        for ds in TRAIN_DAYS:
            features = lake.read_table(Zone.VALIDATED, "flights", ds).to_pandas()
            frames.append(features.merge(lake.read_table(Zone.LABELS, "flights", ds).to_pandas(), on=KEY))
        train = pd.concat(frames, ignore_index=True)
        x, y = prepare_features(train, NUMERIC, CATEGORICAL), train["delayed"].to_numpy()
        hgb = build_pipeline("hist_gradient_boosting", NUMERIC, CATEGORICAL, {"max_iter": 40}, 42).fit(x, y)
        lr = build_pipeline("logistic_regression", NUMERIC, CATEGORICAL, {}, 42).fit(x, y)
        _CACHE["models"] = Models(export_onnx(hgb, NUMERIC, CATEGORICAL), export_onnx(lr, NUMERIC, CATEGORICAL))
    models: Models = _CACHE["models"]
    return models


def copy_days(source_root: Path, lake: Lake, days: list[date], zones: tuple[Zone, ...] = (Zone.VALIDATED,)) -> None:
    """Copy partitions of the read-only flights lake into ``lake`` (any backend, same model name)."""
    source = Lake(source_root.as_uri())
    for zone in zones:
        for ds in days:
            if source.has_partition(zone, "flights", ds):
                lake.write_partition(zone, "flights", ds, source.read_table(zone, "flights", ds))


def s3_lake(endpoint: str, bucket: str, prefix: str = "lake", **options: Any) -> Lake:
    return Lake(f"s3://{bucket}/{prefix}", S3Options("test", "test", endpoint_url=endpoint, **options))


def boto(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )


def keys_in(endpoint: str, bucket: str) -> list[str]:
    found = boto(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(str(o["Key"]) for o in found if not str(o["Key"]).endswith("/"))  # not folder markers


class Watcher(threading.Thread):
    """Reads a partition in a loop while a writer works: every observation is recorded as
    ``None`` (absent) or ``(rows, versions)``; a failed read is recorded in ``errors``."""

    def __init__(self, lake: Lake, zone: Zone, ds: date, column: str = "model_version") -> None:
        super().__init__(daemon=True)
        self.lake, self.zone, self.ds, self.column = lake, zone, ds, column
        self.seen: list[tuple[int, tuple[Any, ...]] | None] = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                if self.lake.has_partition(self.zone, "flights", self.ds):
                    table = self.lake.read_table(self.zone, "flights", self.ds)
                    values = tuple(sorted(set(table.column(self.column).to_pylist())))
                    self.seen.append((table.num_rows, values))
                else:
                    self.seen.append(None)
            except Exception as exc:  # noqa: BLE001 - every failed read is a finding
                self.errors.append(repr(exc))
            time.sleep(0.005)

    def stop(self) -> set[tuple[int, tuple[Any, ...]] | None]:
        self.halt.set()
        self.join(timeout=10)
        return set(self.seen)


def spec_named(name: str, **sections: Any) -> ModelSpec:
    """The flights spec under another model name (own registry entry, own lake paths)."""
    update: dict[str, Any] = {"name": name}
    for section, values in sections.items():
        update[section] = getattr(SPEC, section).model_copy(update=values)
    return SPEC.model_copy(update=update)


# =========================================================================== fixtures


@pytest.fixture()
def file_lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


@pytest.fixture()
def models(flights_lake: Path) -> Models:
    return flights_models(flights_lake)


# =========================================================================== killed mid-write


@pytest.mark.parametrize("backend", ["file", "s3"])
def test_validation_publish_killed_mid_write_leaves_nothing_then_rerun_publishes(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, flights_lake: Path
) -> None:
    """Validation's publish (landing -> validated) SIGKILLed after the copy, before the move."""
    s3: dict[str, str] | None = None
    if backend == "file":
        lake = Lake((tmp_path / "lake").as_uri())
    else:
        endpoint, bucket = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket")
        lake, s3 = s3_lake(endpoint, bucket), {"endpoint": endpoint}
    copy_days(flights_lake, lake, [DAY], zones=(Zone.LANDING,))
    landing = lake.partition_file(Zone.LANDING, "flights", DAY)
    flag = tmp_path / "paused"
    child = start_child(
        """
        from datetime import date
        from include.lake import Lake, S3Options, Zone
        s3 = S3Options("test", "test", endpoint_url=ARGS["s3"]["endpoint"]) if ARGS["s3"] else None
        lake = Lake(ARGS["lake"], s3)
        real = Lake._publish
        def paused(self, tmp, final):
            if "/validated/" in final:
                pause_here("after copy to " + tmp)
            return real(self, tmp, final)
        Lake._publish = paused
        lake.publish_copy(ARGS["landing"], Zone.VALIDATED, "flights", date.fromisoformat(ARGS["ds"]))
        """,
        flag=str(flag),
        lake=lake.uri,
        s3=s3,
        landing=landing,
        ds=DAY.isoformat(),
    )
    where = kill_when_paused(child, flag)
    assert where.startswith("after copy to ") and "/_tmp/" in where
    # Killed after the complete copy: the temporary object exists, the partition does not.
    assert lake.exists(where.removeprefix("after copy to "))
    assert not lake.has_partition(Zone.VALIDATED, "flights", DAY)
    assert lake.list_partitions(Zone.VALIDATED, "flights") == []
    assert lake.list_files(lake.path("validated")) == []

    info = lake.publish_copy(landing, Zone.VALIDATED, "flights", DAY)  # the retry
    assert info.rows == lake.read_table(Zone.LANDING, "flights", DAY).num_rows > 0
    assert lake.read_table(Zone.VALIDATED, "flights", DAY).equals(lake.read_table(Zone.LANDING, "flights", DAY))
    assert lake.clean_tmp() == 0  # a fresh leftover could be a write still in flight: kept for 6 h
    assert lake.clean_tmp(older_than=timedelta(0)) == 1  # the crashed attempt's leftover, and only it
    assert lake.list_files(lake.path("_tmp")) == []


def _score_child(**args: Any) -> subprocess.Popen[str]:
    return start_child(
        """
        from datetime import date
        from include.lake import Lake
        from include.scoring import score as score_module
        from include.spec import get_spec
        real = score_module.score_feeds
        calls = {"n": 0}
        def maybe_pause(*a):
            calls["n"] += 1
            if calls["n"] == ARGS.get("pause_at"):
                pause_here("in batch %d" % calls["n"])
            return real(*a)
        score_module.score_feeds = maybe_pause
        if ARGS.get("go"):
            wait_go()
        onnx = open(ARGS["onnx"], "rb").read()
        report = score_module.score_partition(
            get_spec("flights"), Lake(ARGS["lake"]), date.fromisoformat(ARGS["ds"]), onnx,
            model_name="flights", model_version=ARGS["version"], run_id=ARGS["run_id"],
            batch_size=ARGS["batch"], threads=1,
        )
        print(json.dumps(report.to_dict()))
        """,
        **args,
    )


def test_scoring_killed_mid_write_keeps_previous_day_and_rerun_replaces_it(
    tmp_path: Path, file_lake: Lake, models: Models, flights_lake: Path
) -> None:
    """A scoring task SIGKILLed in batch 4 while rewriting a day scored earlier by v1."""
    from include.scoring.score import score_partition

    copy_days(flights_lake, file_lake, [DAY])
    onnx = tmp_path / "v2.onnx"
    onnx.write_bytes(models.lr)
    v1 = score_partition(SPEC, file_lake, DAY, models.hgb, model_name="flights", model_version=1, run_id="r1")
    rows = v1.rows_in
    watcher = Watcher(file_lake, Zone.PREDICTIONS, DAY)
    watcher.start()
    flag = tmp_path / "paused"
    child = _score_child(
        flag=str(flag), lake=file_lake.uri, ds=DAY.isoformat(), onnx=str(onnx), version=2, run_id="r2", batch=128,
        pause_at=4,
    )  # fmt: skip
    assert kill_when_paused(child, flag) == "in batch 4"
    # Three batches were already streamed into the in-flight file: it is partial, and invisible.
    tmp_files = file_lake.list_files(file_lake.path("_tmp"))
    assert any(p.endswith("/data.parquet") for p in tmp_files)
    assert file_lake.read_table(Zone.PREDICTIONS, "flights", DAY).column("model_version").unique().to_pylist() == [1]

    rerun = score_partition(SPEC, file_lake, DAY, models.lr, model_name="flights", model_version=2, run_id="r2")
    deadline = time.monotonic() + 10
    while (rows, (2,)) not in watcher.seen and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = watcher.stop()
    assert watcher.errors == []
    assert seen == {(rows, (1,)), (rows, (2,))}  # only ever a whole v1 day or a whole v2 day
    assert rerun.rows_in == rows and rerun.rows_scored + rerun.rows_rejected == rows
    out = file_lake.read_table(Zone.PREDICTIONS, "flights", DAY)
    assert out.num_rows == rerun.rows_scored and pc.count_distinct(out.column(KEY)).as_py() == out.num_rows
    assert file_lake.clean_tmp(older_than=timedelta(0)) >= 1
    assert file_lake.list_files(file_lake.path("_tmp")) == []


def test_shard_killed_mid_write_then_retried_alone(
    tmp_path: Path, file_lake: Lake, models: Models, flights_lake: Path
) -> None:
    """One mapped shard task SIGKILLed mid-write; its retry (and only it) completes the day."""
    from include.scoring.shards import count_rows, plan_shards, publish_shards, score_shard, shard_dir, verify_partition

    copy_days(flights_lake, file_lake, [DAY])
    ranges = plan_shards(count_rows(file_lake, SPEC, DAY), 300)
    assert len(ranges) >= 3
    common = {"run_key": "scheduled__d", "model_name": "flights", "model_version": 1, "run_id": "r", "batch_size": 64}
    for i in [i for i in range(len(ranges)) if i != 1]:
        score_shard(SPEC, file_lake, DAY, models.hgb, index=i, row_range=ranges[i], **common)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(models.hgb)
    flag = tmp_path / "paused"
    child = start_child(
        """
        from datetime import date
        from include.lake import Lake
        from include.scoring import score as score_module, shards
        from include.spec import get_spec
        real = score_module.score_feeds
        calls = {"n": 0}
        def maybe_pause(*a):
            calls["n"] += 1
            if calls["n"] == 3:
                pause_here("shard 1 batch 3")
            return real(*a)
        score_module.score_feeds = maybe_pause
        shards.score_shard(get_spec("flights"), Lake(ARGS["lake"]), date.fromisoformat(ARGS["ds"]),
            open(ARGS["onnx"], "rb").read(), index=1, row_range=tuple(ARGS["range"]), threads=1, **ARGS["common"])
        """,
        flag=str(flag), lake=file_lake.uri, ds=DAY.isoformat(), onnx=str(onnx), range=ranges[1], common=common,
    )  # fmt: skip
    kill_when_paused(child, flag)
    folder = shard_dir(file_lake, SPEC, DAY, "scheduled__d")
    assert sorted(p.rsplit("/", 1)[-1] for p in file_lake.list_files(folder)) == sorted(
        f"shard-{i}{kind}.parquet" for i in range(len(ranges)) if i != 1 for kind in ("", ".rejects")
    )  # the killed shard left nothing; the others are untouched
    with pytest.raises(LakeError, match=rf"1 of {len(ranges)} shard files missing .*: shard-1 "):
        publish_shards(file_lake, SPEC, DAY, "scheduled__d", len(ranges))
    assert not file_lake.has_partition(Zone.PREDICTIONS, "flights", DAY)

    score_shard(SPEC, file_lake, DAY, models.hgb, index=1, row_range=ranges[1], **common)  # the retry
    manifest = publish_shards(file_lake, SPEC, DAY, "scheduled__d", len(ranges))
    assert manifest["rows_in"] == count_rows(file_lake, SPEC, DAY)
    assert verify_partition(file_lake, SPEC, DAY)["data_sha256"] == manifest["data_sha256"]
    keys = file_lake.read_table(Zone.PREDICTIONS, "flights", DAY).column(KEY)
    assert pc.count_distinct(keys).as_py() == len(keys) == manifest["rows_scored"]


def test_shards_publish_killed_mid_concatenation_then_rerun(
    tmp_path: Path, file_lake: Lake, models: Models, flights_lake: Path
) -> None:
    """publish_shards SIGKILLed after one shard was streamed into the day's file."""
    from include.scoring.shards import count_rows, plan_shards, publish_shards, score_shard, shard_dir, verify_partition

    copy_days(flights_lake, file_lake, [DAY])
    ranges = plan_shards(count_rows(file_lake, SPEC, DAY), 300)
    common = {"run_key": "scheduled__p", "model_name": "flights", "model_version": 1, "run_id": "r"}
    for i, rng in enumerate(ranges):
        score_shard(SPEC, file_lake, DAY, models.hgb, index=i, row_range=rng, **common)
    shard_files = file_lake.list_files(shard_dir(file_lake, SPEC, DAY, "scheduled__p"))
    flag = tmp_path / "paused"
    child = start_child(
        """
        from datetime import date
        from include.lake import Lake
        from include.scoring import shards
        from include.spec import get_spec
        real = shards._concatenate
        calls = []
        def paused(lake, sources, writer):
            calls.append(1)
            if len(calls) == 2:  # the first call concatenates rejects, the second the data
                real(lake, sources[:1], writer)
                pause_here("data: 1 of %d shards written" % len(sources))
            return real(lake, sources, writer)
        shards._concatenate = paused
        shards.publish_shards(Lake(ARGS["lake"]), get_spec("flights"), date.fromisoformat(ARGS["ds"]),
            "scheduled__p", ARGS["n"])
        """,
        flag=str(flag), lake=file_lake.uri, ds=DAY.isoformat(), n=len(ranges),
    )  # fmt: skip
    assert kill_when_paused(child, flag) == f"data: 1 of {len(ranges)} shards written"
    assert not file_lake.has_partition(Zone.PREDICTIONS, "flights", DAY)
    assert file_lake.list_partitions(Zone.PREDICTIONS, "flights") == []
    assert file_lake.list_files(shard_dir(file_lake, SPEC, DAY, "scheduled__p")) == shard_files  # nothing lost
    # Only the rejects (committed just before the data file, skipped by readers: "_" prefix) are there.
    assert [p.rsplit("/", 1)[-1] for p in file_lake.list_files(file_lake.partition_dir(Zone.PREDICTIONS, "flights", DAY))
            if "/_shards/" not in p] == ["_rejects.parquet"]  # fmt: skip

    manifest = publish_shards(file_lake, SPEC, DAY, "scheduled__p", len(ranges))
    assert verify_partition(file_lake, SPEC, DAY)["total_rows"] == manifest["rows_scored"]
    assert manifest["rows_in"] == count_rows(file_lake, SPEC, DAY)
    assert publish_shards(file_lake, SPEC, DAY, "scheduled__p", len(ranges)) == manifest  # idempotent


def _ledger_entry(when: datetime, decision: str = "d1") -> Any:
    from include.registry.ledger import LedgerEntry

    return LedgerEntry(
        time=when, action="promote", model="flights", version=2, previous_version=1, decision_id=decision,
        summary="PROMOTE", dag_id="flights__promote", run_id="manual__1",
    )  # fmt: skip


def test_ledger_append_killed_mid_write_leaves_no_entry_then_rerun_appends_once(
    tmp_path: Path, file_lake: Lake
) -> None:
    from include.registry.ledger import append_entry, ledger_dir, read_ledger

    when = datetime(2013, 1, 10, 6, tzinfo=UTC)
    flag = tmp_path / "paused"
    child = start_child(
        """
        from datetime import datetime
        from include.lake import Lake
        from include.registry.ledger import LedgerEntry, append_entry
        real = Lake._publish
        def paused(self, tmp, final):
            if "/ledger/" in final:
                pause_here(final)
            return real(self, tmp, final)
        Lake._publish = paused
        append_entry(Lake(ARGS["lake"]), LedgerEntry(time=datetime.fromisoformat(ARGS["when"]), action="promote",
            model="flights", version=2, previous_version=1, decision_id="d1", summary="PROMOTE",
            dag_id="flights__promote", run_id="manual__1"))
        """,
        flag=str(flag), lake=file_lake.uri, when=when.isoformat(),
    )  # fmt: skip
    kill_when_paused(child, flag)
    assert file_lake.list_files(ledger_dir(file_lake, "flights")) == []
    assert read_ledger(file_lake, "flights") == []  # no half-written JSON for the reader to choke on

    first = append_entry(file_lake, _ledger_entry(when))
    again = append_entry(file_lake, _ledger_entry(when + timedelta(minutes=5)))  # a retry with a later clock
    assert again == first
    history = read_ledger(file_lake, "flights")
    assert [(e["action"], e["version"], e["decision_id"]) for e in history] == [("promote", 2, "d1")]


# =========================================================================== duplicate delivery


def test_same_scoring_task_twice_at_once_gives_one_complete_day(
    tmp_path: Path, file_lake: Lake, models: Models, flights_lake: Path
) -> None:
    """Two processes score the same day at the same moment (a retry racing the original)."""
    from include.scoring.score import rejects_file, score_partition

    copy_days(flights_lake, file_lake, [DAY])
    reference = Lake((tmp_path / "reference").as_uri())
    copy_days(flights_lake, reference, [DAY])
    expected = score_partition(SPEC, reference, DAY, models.hgb, model_name="flights", model_version=1, run_id="r",
                               batch_size=128, threads=1)  # fmt: skip
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(models.hgb)
    go = tmp_path / "go"
    args = {"lake": file_lake.uri, "ds": DAY.isoformat(), "onnx": str(onnx), "version": 1, "run_id": "r", "batch": 128}
    children = [_score_child(flag=str(tmp_path / f"f{i}"), go=str(go), **args) for i in range(2)]
    release(go, children)
    reports = [json.loads(finish(c).strip().splitlines()[-1]) for c in children]
    assert [r["rows_scored"] for r in reports] == [expected.rows_scored] * 2
    data = file_lake.partition_file(Zone.PREDICTIONS, "flights", DAY)
    assert file_lake.read_bytes(data) == reference.read_bytes(
        reference.partition_file(Zone.PREDICTIONS, "flights", DAY)
    )
    assert file_lake.read_bytes(rejects_file(file_lake, Zone.PREDICTIONS, "flights", DAY)) == reference.read_bytes(
        rejects_file(reference, Zone.PREDICTIONS, "flights", DAY)
    )
    keys = file_lake.read_table(Zone.PREDICTIONS, "flights", DAY).column(KEY)
    assert pc.count_distinct(keys).as_py() == len(keys)
    assert file_lake.list_files(file_lake.path("_tmp")) == []


def test_shards_published_twice_at_once_give_one_day(file_lake: Lake, models: Models, flights_lake: Path) -> None:
    from include.scoring.shards import count_rows, plan_shards, publish_shards, score_shard, verify_partition

    copy_days(flights_lake, file_lake, [DAY])
    ranges = plan_shards(count_rows(file_lake, SPEC, DAY), 300)
    common = {"run_key": "scheduled__twice", "model_name": "flights", "model_version": 1, "run_id": "r"}
    for i, rng in enumerate(ranges):
        score_shard(SPEC, file_lake, DAY, models.hgb, index=i, row_range=rng, **common)
    barrier = threading.Barrier(2)

    def publish() -> dict[str, Any]:
        barrier.wait()
        return publish_shards(file_lake, SPEC, DAY, "scheduled__twice", len(ranges))

    with ThreadPoolExecutor(2) as pool:
        results = [f.result() for f in [pool.submit(publish) for _ in range(2)]]
    assert {r["data_sha256"] for r in results} == {verify_partition(file_lake, SPEC, DAY)["data_sha256"]}
    out = file_lake.read_table(Zone.PREDICTIONS, "flights", DAY)
    assert out.num_rows == results[0]["rows_scored"] and pc.count_distinct(out.column(KEY)).as_py() == out.num_rows
    assert (
        publish_shards(file_lake, SPEC, DAY, "scheduled__twice", len(ranges))["data_sha256"]
        == results[0]["data_sha256"]
    )


def test_a_publish_whose_shards_a_duplicate_publishes_under_it_returns_that_day(
    file_lake: Lake, models: Models, flights_lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving the threads above hit only sometimes, forced: the duplicate publishes and
    deletes the shards while this publish is reading them."""
    import include.scoring.shards as shards

    copy_days(flights_lake, file_lake, [DAY])
    ranges = shards.plan_shards(shards.count_rows(file_lake, SPEC, DAY), 300)
    common = {"model_name": "flights", "model_version": 1, "run_id": "r"}

    def score_all(run_key: str) -> None:
        for i, rng in enumerate(ranges):
            shards.score_shard(SPEC, file_lake, DAY, models.hgb, index=i, row_range=rng, run_key=run_key, **common)

    score_all("scheduled__under")
    concatenate = shards._concatenate
    duplicate: list[dict[str, Any]] = []

    def concatenate_after_the_duplicate(lake: Lake, sources: list[str], writer: Any) -> int:
        if not duplicate:
            monkeypatch.setattr(shards, "_concatenate", concatenate)
            duplicate.append(shards.publish_shards(file_lake, SPEC, DAY, "scheduled__under", len(ranges)))
        return concatenate(lake, sources, writer)

    monkeypatch.setattr(shards, "_concatenate", concatenate_after_the_duplicate)
    assert shards.publish_shards(file_lake, SPEC, DAY, "scheduled__under", len(ranges)) == duplicate[0]
    assert shards.verify_partition(file_lake, SPEC, DAY) == duplicate[0]
    assert file_lake.list_files(shards.shard_dir(file_lake, SPEC, DAY, "scheduled__under")) == []
    assert file_lake.list_files(file_lake.path("_tmp")) == []

    # a shard that vanishes without any publish of this run is still an error
    score_all("scheduled__again")

    def concatenate_after_a_loss(lake: Lake, sources: list[str], writer: Any) -> int:
        lake.fs.delete_file(sources[-1])
        return concatenate(lake, sources, writer)

    monkeypatch.setattr(shards, "_concatenate", concatenate_after_a_loss)
    with pytest.raises(FileNotFoundError, match="shard-"):
        shards.publish_shards(file_lake, SPEC, DAY, "scheduled__again", len(ranges))


def test_ledger_appended_by_four_processes_at_once_records_one_entry(tmp_path: Path, file_lake: Lake) -> None:
    from include.registry.ledger import read_ledger

    go = tmp_path / "go"
    body = """
        from datetime import datetime, timedelta
        from include.lake import Lake
        from include.registry.ledger import LedgerEntry, append_entry
        wait_go()
        when = datetime.fromisoformat(ARGS["when"]) + timedelta(seconds=ARGS["skew"])
        print(append_entry(Lake(ARGS["lake"]), LedgerEntry(time=when, action="promote", model="flights", version=2,
            previous_version=1, decision_id="dup", summary="PROMOTE", dag_id="flights__promote", run_id="manual__1")))
    """
    when = datetime(2013, 1, 10, 6, tzinfo=UTC).isoformat()
    children = [start_child(body, go=str(go), lake=file_lake.uri, when=when, skew=s) for s in (0, 0, 1, 2)]
    release(go, children)
    for child in children:
        finish(child)
    history = read_ledger(file_lake, "flights")
    assert [(e["action"], e["decision_id"]) for e in history] == [("promote", "dup")]
    delivered = {(datetime.fromisoformat(when) + timedelta(seconds=s)).isoformat() for s in (0, 1, 2)}
    assert history[0]["time"] in delivered  # whichever delivery wrote first stands, alone


def test_validation_publish_delivered_twice_at_once_gives_one_partition(file_lake: Lake, flights_lake: Path) -> None:
    copy_days(flights_lake, file_lake, [DAY], zones=(Zone.LANDING,))
    landing = file_lake.partition_file(Zone.LANDING, "flights", DAY)
    barrier = threading.Barrier(4)

    def publish() -> int:
        barrier.wait()
        return file_lake.publish_copy(landing, Zone.VALIDATED, "flights", DAY).rows

    with ThreadPoolExecutor(4) as pool:
        rows = {f.result() for f in [pool.submit(publish) for _ in range(4)]}
    assert rows == {file_lake.read_table(Zone.LANDING, "flights", DAY).num_rows}
    assert file_lake.list_files(file_lake.partition_dir(Zone.VALIDATED, "flights", DAY)) == [
        file_lake.partition_file(Zone.VALIDATED, "flights", DAY)
    ]
    assert file_lake.read_bytes(file_lake.partition_file(Zone.VALIDATED, "flights", DAY)) == file_lake.read_bytes(
        landing
    )
    assert file_lake.list_files(file_lake.path("_tmp")) == []


# =========================================================================== a flaky S3 endpoint


@pytest.fixture()
def s3_proxy(s3_server: str) -> Iterator[FaultProxy]:
    with fault_proxy(s3_server) as proxy:
        yield proxy


def _table(n: int) -> pa.Table:
    return pa.table({"k": pa.array(range(n)), "x": pa.array([i * 0.5 for i in range(n)])})


def test_s3_every_third_request_failing_is_retried_and_data_is_whole(
    s3_proxy: FaultProxy, s3_bucket: str, s3_server: str
) -> None:
    injected: list[int] = []

    def every_third(method: str, path: str, headers: Any, n: int) -> int | None:
        if n % 3 == 0 and len(injected) < 6:  # a bounded burst: the SDK's back-off makes each retry cost ~1 s
            injected.append(n)
            return 503
        return None

    s3_proxy.rule = every_third
    lake = s3_lake(s3_proxy.url, s3_bucket)
    for day in (1, 2):
        lake.write_partition(Zone.LANDING, "flights", date(2013, 1, day), _table(5000 * day))
    assert lake.list_partitions(Zone.LANDING, "flights") == [date(2013, 1, 1), date(2013, 1, 2)]
    for day in (1, 2):
        assert lake.read_table(Zone.LANDING, "flights", date(2013, 1, day)).equals(_table(5000 * day))
    assert len([e for e in s3_proxy.log if e[2] == 503]) == 6  # the faults really happened ...
    # ... and what moto holds is exactly the two published files: no temporary leftovers.
    assert keys_in(s3_server, s3_bucket) == [f"lake/landing/flights/ds=2013-01-0{d}/data.parquet" for d in (1, 2)]


def test_s3_writes_failing_for_good_fail_cleanly_and_keep_the_previous_version(
    s3_proxy: FaultProxy, s3_bucket: str, s3_server: str
) -> None:
    lake = s3_lake(s3_proxy.url, s3_bucket, max_attempts=3)
    lake.write_partition(Zone.VALIDATED, "flights", DAY, _table(10))
    s3_proxy.rule = lambda method, path, headers, n: 500 if method in ("PUT", "POST") else None
    started = time.monotonic()
    with pytest.raises(OSError, match=r"(?s)INTERNAL|InternalError|500|injected"):
        lake.write_partition(Zone.VALIDATED, "flights", DAY, _table(999))
    assert time.monotonic() - started < 60
    assert {e[0] for e in s3_proxy.log if e[2] == 500} == {"POST"}  # every write attempt failed (and retried)
    assert len([e for e in s3_proxy.log if e[2] == 500]) == 3
    s3_proxy.rule = None
    assert lake.read_table(Zone.VALIDATED, "flights", DAY).equals(_table(10))  # previous version intact
    assert keys_in(s3_server, s3_bucket) == ["lake/validated/flights/ds=2013-01-10/data.parquet"]


def test_s3_copy_failing_at_publish_leaves_no_partial_object(
    s3_proxy: FaultProxy, s3_bucket: str, s3_server: str
) -> None:
    """The temporary upload succeeds, the server-side copy (the commit) fails every time."""
    lake = s3_lake(s3_proxy.url, s3_bucket, max_attempts=2)
    s3_proxy.rule = lambda method, path, headers, n: (
        503 if method == "PUT" and "x-amz-copy-source" in {k.lower() for k in headers} else None
    )
    with pytest.raises(OSError):
        lake.write_partition(Zone.VALIDATED, "flights", DAY, _table(100))
    s3_proxy.rule = None
    assert not lake.has_partition(Zone.VALIDATED, "flights", DAY)
    assert [k for k in keys_in(s3_server, s3_bucket) if not k.startswith("lake/_tmp/")] == []
    lake.write_partition(Zone.VALIDATED, "flights", DAY, _table(100))  # the retry
    assert lake.read_table(Zone.VALIDATED, "flights", DAY).equals(_table(100))


def test_s3_reads_retry_through_errors_mid_stream(s3_proxy: FaultProxy, s3_bucket: str) -> None:
    lake = s3_lake(s3_proxy.url, s3_bucket)
    table = pa.table({"k": pa.array(range(200_000)), "x": pa.array([float(i) for i in range(200_000)])})
    with lake.partition_writer(Zone.VALIDATED, "flights", DAY, table.schema) as writer:
        writer.write_table(table, row_group_size=40_000)  # 5 row groups: several ranged GETs
    failed: set[str] = set()

    def every_range_fails_once(method: str, path: str, headers: Any, n: int) -> int | None:
        ranged = headers.get("Range")
        if method == "GET" and ranged and ranged not in failed and len(failed) < 4:
            failed.add(ranged)
            return 500
        return None

    s3_proxy.rule = every_range_fails_once
    total = sum(b.num_rows for b in lake.read_batches(Zone.VALIDATED, "flights", DAY, batch_size=7000))
    assert total == 200_000
    assert len(failed) == 4  # four ranged reads failed once each and were retried


def test_s3_wrong_credentials_fail_with_a_clear_error_and_write_nothing(
    s3_proxy: FaultProxy, s3_bucket: str, s3_server: str
) -> None:
    """The proxy answers like S3 does for an unknown access key (moto does not check keys)."""
    s3_proxy.rule = lambda method, path, headers, n: (
        403 if "Credential=WRONGKEY/" in headers.get("Authorization", "") else None
    )
    lake = Lake(f"s3://{s3_bucket}/lake", S3Options("WRONGKEY", "nope", endpoint_url=s3_proxy.url, max_attempts=2))
    with pytest.raises(OSError, match=r"INVALID_ACCESS_KEY_ID") as err:
        lake.write_partition(Zone.VALIDATED, "flights", DAY, _table(5))
    assert s3_bucket in str(err.value)  # the message names where it tried to write
    assert "nope" not in str(err.value)  # and never the secret
    assert keys_in(s3_server, s3_bucket) == []


def test_s3_endpoint_down_fails_fast_naming_the_object(s3_bucket: str) -> None:
    from devstack.stack import free_port

    lake = Lake(f"s3://{s3_bucket}/lake", S3Options("test", "test", endpoint_url=f"http://127.0.0.1:{free_port()}",
                                                     max_attempts=2))  # fmt: skip
    started = time.monotonic()
    with pytest.raises((OSError, LakeError), match=rf"(?s){s3_bucket}.*NETWORK_CONNECTION.*Could not connect"):
        lake.read_table(Zone.VALIDATED, "flights", DAY)
    assert time.monotonic() - started < 60


def test_s3_faults_while_scoring_a_day_still_publish_the_same_day(
    s3_proxy: FaultProxy, s3_bucket: str, s3_server: str, tmp_path: Path, models: Models, flights_lake: Path
) -> None:
    """Scoring reads the validated day and writes predictions + rejects through a flaky endpoint."""
    from include.scoring.score import score_partition

    lake = s3_lake(s3_proxy.url, s3_bucket)
    copy_days(flights_lake, lake, [DAY])
    reference = Lake((tmp_path / "reference").as_uri())
    copy_days(flights_lake, reference, [DAY])
    options: dict[str, Any] = {"model_name": "flights", "model_version": 1, "run_id": "r", "batch_size": 256}
    expected = score_partition(SPEC, reference, DAY, models.hgb, **options)
    injected: list[str] = []

    def every_fourth(method: str, path: str, headers: Any, n: int) -> int | None:
        if n % 4 == 0 and len(injected) < 6:
            injected.append(method)
            return 500 if len(injected) % 2 else 503
        return None

    s3_proxy.rule = every_fourth
    report = score_partition(SPEC, lake, DAY, models.hgb, **options)
    s3_proxy.rule = None
    assert len(injected) == 6 and {"GET", "HEAD"} & set(injected)  # reads failed too, not only writes
    assert (report.rows_in, report.rows_scored, report.rows_rejected) == (
        expected.rows_in,
        expected.rows_scored,
        expected.rows_rejected,
    )
    assert lake.read_table(Zone.PREDICTIONS, "flights", DAY).equals(
        reference.read_table(Zone.PREDICTIONS, "flights", DAY)
    )
    assert [k for k in keys_in(s3_server, s3_bucket) if "/predictions/" in k] == [
        f"lake/predictions/flights/ds={DAY.isoformat()}/_rejects.parquet",
        f"lake/predictions/flights/ds={DAY.isoformat()}/data.parquet",
    ]
