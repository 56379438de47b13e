"""AirflowClient.new_run / wait_for_new_run against a scripted list of runs, and request()'s
retries against a scripted session (the REST calls themselves are exercised by every system test)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devstack.api import AirflowClient, DagRunError


class ScriptedClient(AirflowClient):
    """``dag_runs`` answers from ``pages`` (one list per call; the last repeats)."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        super().__init__("http://127.0.0.1:9")
        self.pages, self.calls, self.waited = pages, 0, []

    def dag_runs(self, dag_id: str, **_: Any) -> list[dict[str, Any]]:
        page = self.pages[min(self.calls, len(self.pages) - 1)]
        self.calls += 1
        return page

    def wait_dag_run(self, dag_id: str, run_id: str, timeout: float = 0, **_: Any) -> str:
        self.waited.append((dag_id, run_id))
        return "success"

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return {"dag_run_id": run_id, "state": "success"}


OLD = {"dag_run_id": "manual_1", "state": "success"}
NEW = {"dag_run_id": "asset_triggered__2", "state": "queued"}


def test_new_run_returns_the_first_run_not_seen_before_as_soon_as_it_exists() -> None:
    client = ScriptedClient([[OLD], [OLD], [NEW, OLD]])
    assert client.new_run("flights__promote", {"manual_1"}, timeout=10, poll=0.01) == NEW
    assert client.calls == 3 and client.waited == []  # polled until it appeared, did not wait for it


def test_new_run_names_the_dag_when_none_appears() -> None:
    client = ScriptedClient([[OLD]])
    with pytest.raises(DagRunError, match="no new run of flights__train within 0s"):
        client.new_run("flights__train", {"manual_1"}, timeout=0.05, poll=0.01)
    assert client.calls >= 2  # it looked again before giving up


def test_wait_for_new_run_waits_for_that_run_and_returns_its_final_state() -> None:
    client = ScriptedClient([[OLD], [NEW, OLD]])
    assert client.wait_for_new_run("flights__promote", {"manual_1"}, timeout=10) == {
        "dag_run_id": "asset_triggered__2",
        "state": "success",
    }
    assert client.waited == [("flights__promote", "asset_triggered__2")]


class FlakySession(requests.Session):
    """Raises the scripted ``failures`` first, then answers 200 ``{"ok": true}``."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures, self.calls = failures, 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        resp = requests.Response()
        resp.status_code, resp._content = 200, b'{"ok": true}'
        return resp


def _flaky_client(failures: list[Exception], monkeypatch: pytest.MonkeyPatch) -> tuple[AirflowClient, FlakySession]:
    monkeypatch.setattr("devstack.api.time.sleep", lambda s: None)
    client = AirflowClient("http://127.0.0.1:9")
    client._token = "signed-in"
    client.session = FlakySession(failures)
    return client, client.session


def test_a_get_is_retried_after_a_dropped_connection_or_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    client, session = _flaky_client([requests.ConnectionError("reset"), requests.ReadTimeout("slow")], monkeypatch)
    assert client.request("GET", "/api/v2/dags") == {"ok": True}
    assert session.calls == 3


def test_a_get_gives_up_after_its_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    client, session = _flaky_client([requests.ConnectionError(f"reset {n}") for n in range(5)], monkeypatch)
    with pytest.raises(requests.ConnectionError, match="reset 3"):
        client.request("GET", "/api/v2/dags", retries=3)
    assert session.calls == 4


def test_a_post_is_never_repeated_after_a_dropped_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    client, session = _flaky_client([requests.ConnectionError("reset")], monkeypatch)
    with pytest.raises(
        requests.ConnectionError
    ):  # it may have been carried out: a second trigger would be a second run
        client.request("POST", "/api/v2/dags/flights__train/dagRuns", json={})
    assert session.calls == 1
