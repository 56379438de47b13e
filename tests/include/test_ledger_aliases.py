"""The promotion ledger (file:// and S3 lakes) and compare-and-set alias moves on a real MLflow server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from include.lake import Lake, S3Options
from include.registry.aliases import (
    AliasLockTimeout,
    AliasRaceError,
    current_alias,
    model_lock,
    move_alias_cas,
    normalise_version,
    tag_version,
)
from include.registry.ledger import (
    LedgerEntry,
    LedgerError,
    append_entry,
    last_entry,
    ledger_dir,
    ledger_jsonl,
    read_ledger,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

T0 = datetime(2013, 1, 8, 6, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- ledger
@pytest.fixture(params=["file", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "file":
        return Lake(tmp_path.as_uri())
    endpoint = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Lake(f"s3://{bucket}/lake", S3Options("test", "test", endpoint_url=endpoint))


ENTRY: dict[str, Any] = {
    "time": T0,
    "action": "promote",
    "model": "flights",
    "version": 2,
    "previous_version": 1,
    "decision_id": "a1b2c3d4e5f60718",
    "summary": "PROMOTE: ROC AUC 0.7500 vs champion 0.7400",
    "figures": {"challenger_roc_auc": 0.75, "gain_lower": -0.004},
    "approver": None,
    "reason": "gate passed",
    "dag_id": "promote_flights",
    "run_id": "scheduled__2013-01-08T06:00:00+00:00",
}


def _entry(**changes: Any) -> LedgerEntry:
    return LedgerEntry(**{**ENTRY, **changes})


def test_entries_are_appended_and_read_back_in_time_order(lake: Lake) -> None:
    later = _entry(time=T0 + timedelta(days=7), version=3, previous_version=2, decision_id="bbbb000000000002")
    rollback = _entry(
        time=T0 + timedelta(days=8),
        action="rollback",
        version=2,
        previous_version=3,
        decision_id="",
        approver="alice",
        reason="bad live AUC",
        run_id="manual__2013-01-16",
    )
    first = _entry()
    for entry in (later, rollback, first):  # written out of order
        append_entry(lake, entry)

    history = read_ledger(lake, "flights")
    assert [(e["action"], e["version"], e["previous_version"]) for e in history] == [
        ("promote", 2, 1),
        ("promote", 3, 2),
        ("rollback", 2, 3),
    ]
    assert history[0] == {**ENTRY, "time": "2013-01-08T06:00:00+00:00"}  # every field round-trips
    # An entry without a decision id (manual rollback) gets a stable id of its own.
    assert history[2]["decision_id"] == rollback.entry_id and rollback.entry_id.startswith("m")
    assert last_entry(history) == history[2]
    assert last_entry(history, ("promote",)) == history[1]

    names = [p.rsplit("/", 1)[-1] for p in lake.list_files(ledger_dir(lake, "flights"))]
    assert names[0] == "20130108T060000000000Z-a1b2c3d4e5f60718-promote.json"
    assert all(
        lake.relative(p).startswith("reports/flights/ledger/") for p in lake.list_files(ledger_dir(lake, "flights"))
    )

    lines = ledger_jsonl(lake, "flights").splitlines()
    assert [json.loads(line) for line in lines] == history


def test_rewriting_an_entry_is_idempotent(lake: Lake) -> None:
    entry = _entry()
    uri = append_entry(lake, entry)
    files = lake.list_files(ledger_dir(lake, "flights"))
    content = lake.read_bytes(files[0])
    assert append_entry(lake, entry) == uri
    assert lake.list_files(ledger_dir(lake, "flights")) == files
    assert lake.read_bytes(files[0]) == content

    # A retry of the same decision that read a later clock does not add a second record.
    assert append_entry(lake, _entry(time=T0 + timedelta(minutes=5))) == uri
    assert len(read_ledger(lake, "flights")) == 1
    # The same decision with another action (a person rejected it) is a new record.
    append_entry(lake, _entry(time=T0 + timedelta(hours=1), action="approval_rejected", approver="bob"))
    assert [e["action"] for e in read_ledger(lake, "flights")] == ["promote", "approval_rejected"]


def test_read_ledger_keeps_the_first_of_concurrent_duplicates(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    # Two retries racing past the existence check both wrote; readers see one entry.
    first, second = _entry(), _entry(time=T0 + timedelta(seconds=1), reason="retry")
    for entry in (first, second):
        name = f"{entry.time.strftime('%Y%m%dT%H%M%S%fZ')}-{entry.entry_id}-{entry.action}.json"
        lake.write_bytes(lake.report_path("flights", "ledger", name), json.dumps(entry.to_dict()).encode())
    history = read_ledger(lake, "flights")
    assert len(history) == 1 and history[0]["reason"] == "gate passed"


def test_times_are_stored_in_utc_and_must_be_aware(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    append_entry(lake, _entry(time=datetime(2013, 1, 8, 8, 0, tzinfo=timezone(timedelta(hours=2)))))
    assert read_ledger(lake, "flights")[0]["time"] == "2013-01-08T06:00:00+00:00"
    with pytest.raises(LedgerError, match="no time zone"):
        _entry(time=datetime(2013, 1, 8))
    with pytest.raises(LedgerError, match="unknown ledger action 'deploy'"):
        _entry(action="deploy")


def test_empty_ledger_reads_as_empty(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    assert read_ledger(lake, "flights") == [] and ledger_jsonl(lake, "flights") == ""
    assert last_entry([]) is None


# --------------------------------------------------------------------------- aliases
MODEL = "cas_model"


@pytest.fixture(scope="module")
def client(mlflow_server: str) -> MlflowClient:
    """A registered model with versions 1, 2 and 3 (one run with a tiny artifact each)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    experiment_id = client.create_experiment("cas")
    client.create_registered_model(MODEL)
    for i in (1, 2, 3):
        run = client.create_run(experiment_id)
        client.log_text(run.info.run_id, f"model {i}", "model/README.txt")
        version = client.create_model_version(MODEL, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        assert normalise_version(version.version) == i
    return client


@pytest.fixture()
def champion_at_1(client: MlflowClient) -> MlflowClient:
    client.set_registered_model_alias(MODEL, "champion", "1")
    return client


def test_unset_alias_reads_as_none_and_first_move_expects_none(client: MlflowClient, tmp_path: Path) -> None:
    assert current_alias(client, MODEL, "first") is None
    assert current_alias(client, "no_such_model", "champion") is None
    move_alias_cas(client, MODEL, "first", 1, expected_current=None, lock_dir=tmp_path)
    version = current_alias(client, MODEL, "first")
    assert version == 1 and isinstance(version, int)  # REST returns "1": normalised


def test_cas_moves_when_the_expected_version_matches(champion_at_1: MlflowClient, tmp_path: Path) -> None:
    move_alias_cas(champion_at_1, MODEL, "champion", 2, expected_current=1, lock_dir=tmp_path)
    assert current_alias(champion_at_1, MODEL, "champion") == 2
    assert champion_at_1.get_model_version_by_alias(MODEL, "champion").version in ("2", 2)
    # A task that runs twice: the second run finds its own move done and succeeds.
    move_alias_cas(champion_at_1, MODEL, "champion", 2, expected_current=1, lock_dir=tmp_path)
    assert current_alias(champion_at_1, MODEL, "champion") == 2


def test_cas_refuses_and_moves_nothing_when_the_alias_moved(champion_at_1: MlflowClient, tmp_path: Path) -> None:
    champion_at_1.set_registered_model_alias(MODEL, "champion", "2")  # someone else promoted v2
    with pytest.raises(AliasRaceError, match=r"points at v2, expected v1: refusing to move it to v3") as info:
        move_alias_cas(champion_at_1, MODEL, "champion", 3, expected_current=1, lock_dir=tmp_path)
    assert (info.value.expected, info.value.actual, info.value.new_version) == (1, 2, 3)
    assert current_alias(champion_at_1, MODEL, "champion") == 2
    with pytest.raises(AliasRaceError, match="points at v2, expected nothing"):
        move_alias_cas(champion_at_1, MODEL, "champion", 3, expected_current=None, lock_dir=tmp_path)
    assert current_alias(champion_at_1, MODEL, "champion") == 2


def test_two_threads_racing_from_v1_exactly_one_wins(champion_at_1: MlflowClient, tmp_path: Path) -> None:
    barrier = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def promote(version: int) -> None:
        barrier.wait()
        try:
            move_alias_cas(champion_at_1, MODEL, "champion", version, expected_current=1, lock_dir=tmp_path)
            outcomes[version] = "won"
        except AliasRaceError:
            outcomes[version] = "race"

    threads = [threading.Thread(target=promote, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["race", "won"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "won")
    assert current_alias(champion_at_1, MODEL, "champion") == winner


class _MovesAfterFirstRead:
    """A client on which someone else moves the alias right after our first (unlocked) read."""

    def __init__(self, client: MlflowClient, to_version: str) -> None:
        self._client, self._to, self.reads = client, to_version, 0

    def get_registered_model(self, name: str) -> Any:
        model = self._client.get_registered_model(name)
        self.reads += 1
        if self.reads == 1:
            self._client.set_registered_model_alias(name, "champion", self._to)
        return model

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._client, attr)


def test_cas_re_checks_after_taking_the_lock(champion_at_1: MlflowClient, tmp_path: Path) -> None:
    sneaky: Any = _MovesAfterFirstRead(champion_at_1, "3")
    with pytest.raises(AliasRaceError, match="points at v3, expected v1"):
        move_alias_cas(sneaky, MODEL, "champion", 2, expected_current=1, lock_dir=tmp_path)
    assert sneaky.reads == 2
    assert current_alias(champion_at_1, MODEL, "champion") == 3


def test_tag_version_sets_string_tags(client: MlflowClient) -> None:
    tag_version(client, MODEL, "2", {"airloop.decision_id": "a1b2", "airloop.gain": 0.01, "skipped": None})
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["airloop.decision_id"] == "a1b2" and tags["airloop.gain"] == "0.01"
    assert "skipped" not in tags


# --------------------------------------------------------------------------- the host lock
def test_model_lock_excludes_another_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import fcntl, os, sys, time
                fd = os.open({str(tmp_path / "airloop-alias-flights.lock")!r}, os.O_RDWR | os.O_CREAT)
                fcntl.flock(fd, fcntl.LOCK_EX)
                print("locked", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(AliasLockTimeout, match="another promotion of 'flights' holds it"):
            with model_lock("flights", tmp_path, timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    with model_lock("flights", tmp_path, timeout=5):
        pass  # released with its holder


def test_model_lock_excludes_another_thread(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def contender() -> None:
        try:
            with model_lock("flights", tmp_path, timeout=0.2):
                pass
        except AliasLockTimeout as exc:
            errors.append(exc)

    with model_lock("flights", tmp_path):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(timeout=10)
    assert len(errors) == 1
    # Another model's lock is independent.
    with model_lock("flights", tmp_path), model_lock("other", tmp_path, timeout=0.2):
        pass
