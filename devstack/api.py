"""Small client for the Airflow 3 REST API v2 (``/api/v2``) built on ``requests``.

Authentication follows the simple auth manager: ``POST /auth/token`` with a JSON
``{"username", "password"}`` body returns ``{"access_token"}`` (HTTP 201), sent as a
Bearer token and refreshed once when rejected (401 "Token Expired" or 403 "Invalid JWT
token").  Endpoints and payloads were checked against ``airflow/api_fastapi/core_api/openapi/v2-rest-api-generated.yaml`` (3.3.2).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from devstack.stack import Stack

log = logging.getLogger(__name__)

FINISHED_RUN_STATES = frozenset({"success", "failed"})
_FAILED_TI_STATES = frozenset({"failed", "upstream_failed", "up_for_retry"})


class AirflowAPIError(RuntimeError):
    """Non-2xx answer from the API server."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body[:2000]}")
        self.status = status
        self.body = body


class DagRunError(RuntimeError):
    """A DAG run failed or did not finish in time; the message carries diagnostics."""

    def __init__(self, message: str, state: str | None) -> None:
        super().__init__(message)
        self.state = state


def _stale_token(resp: requests.Response) -> bool:
    """True if the API rejected the bearer token itself (not a permission problem)."""
    return resp.status_code == 401 or (resp.status_code == 403 and "Invalid JWT token" in resp.text)


def _q(value: str) -> str:
    """Quote one path segment (run ids contain ':' and '+')."""
    return quote(value, safe="")


def _iso(value: datetime | str | None) -> str | None:
    """ISO-8601 string; naive datetimes are taken as UTC (the API wants aware datetimes)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


class AirflowClient:
    """REST API v2 client with token handling and a few wait helpers."""

    def __init__(
        self,
        base_url: str,
        username: str = "admin",
        password: str = "admin",
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = session or requests.Session()
        self._token: str | None = None

    @classmethod
    def for_stack(cls, stack: Stack, **kwargs: Any) -> AirflowClient:
        """Client for a :class:`~devstack.stack.Stack` (its URL and admin credentials)."""
        return cls(stack.api_url, stack.username, stack.password, **kwargs)

    @classmethod
    def from_home(cls, home: Path | str, **kwargs: Any) -> AirflowClient:
        """Client for the stack rooted at ``home`` (reads ``stack.json`` and ``secrets.json``)."""
        home = Path(home)
        info = json.loads((home / "stack.json").read_text())
        password = json.loads((home / "secrets.json").read_text())["admin_password"]
        return cls(info["api_url"], info.get("username", "admin"), password, **kwargs)

    # ------------------------------------------------------------------ plumbing
    def login(self) -> str:
        """Fetch a fresh JWT from ``POST /auth/token``."""
        url = f"{self.base_url}/auth/token"
        resp = self.session.post(url, json={"username": self.username, "password": self.password}, timeout=self.timeout)
        if resp.status_code not in (200, 201):
            raise AirflowAPIError("POST", url, resp.status_code, resp.text)
        self._token = str(resp.json()["access_token"])
        return self._token

    def request(self, method: str, path: str, *, retries: int = 3, **kwargs: Any) -> Any:
        """Authenticated request to ``base_url + path``; returns decoded JSON (or None).

        Re-logs in once when the token is rejected (401 expired, or 403 "Invalid JWT token",
        e.g. signed by a previous stack); retries 503 (the API maps DB lock errors to 503), and
        a GET whose connection failed or timed out (reading twice is harmless; a POST is not
        repeated: it may have been carried out).
        """
        url = f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        extra_headers: dict[str, str] = kwargs.pop("headers", {})
        refreshed = False
        for attempt in range(retries + 1):
            if self._token is None:
                self.login()
            headers = {**extra_headers, "Authorization": f"Bearer {self._token}"}
            try:
                resp = self.session.request(method, url, headers=headers, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                if method.upper() != "GET" or attempt >= retries:
                    raise
                time.sleep(1 + attempt)
                continue
            if not refreshed and _stale_token(resp):
                self._token, refreshed = None, True
                continue
            if resp.status_code == 503 and attempt < retries:
                time.sleep(1 + attempt)
                continue
            break
        if resp.status_code >= 400:
            raise AirflowAPIError(method, url, resp.status_code, resp.text)
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def _paged(
        self, path: str, key: str, params: dict[str, Any] | None = None, page: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Iterate over all items of a ``limit``/``offset`` collection endpoint."""
        offset = 0
        while True:
            data = self.request("GET", path, params={**(params or {}), "limit": page, "offset": offset})
            items = data[key]
            yield from items
            offset += len(items)
            if not items or offset >= data.get("total_entries", offset):
                return

    # ------------------------------------------------------------------ health / DAGs
    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no authentication needed)."""
        resp = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=self.timeout)
        resp.raise_for_status()
        return dict(resp.json())

    def version(self) -> dict[str, Any]:
        """``GET /api/v2/version``."""
        return dict(self.request("GET", "/api/v2/version"))

    def dag(self, dag_id: str) -> dict[str, Any] | None:
        """``GET /api/v2/dags/{dag_id}``; None if the DAG is unknown."""
        try:
            return dict(self.request("GET", f"/api/v2/dags/{_q(dag_id)}"))
        except AirflowAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def dags(self) -> list[dict[str, Any]]:
        """``GET /api/v2/dags`` (all pages)."""
        return list(self._paged("/api/v2/dags", "dags"))

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll: float = 2.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed and serialized ``dag_id``.

        A DAG counts as parsed once ``GET /dags/{id}/details`` answers (it needs the
        serialized DAG).  The timeout error lists current import errors.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                details = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/details")
                if details and not details.get("is_stale", False):
                    return dict(details)
            except AirflowAPIError as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                errors = "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in self.import_errors())
                raise TimeoutError(
                    f"DAG {dag_id!r} not parsed after {timeout:.0f}s; import errors:\n{errors or '(none)'}"
                )
            time.sleep(poll)

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        """``PATCH /api/v2/dags/{dag_id}?update_mask=is_paused``."""
        return dict(
            self.request(
                "PATCH", f"/api/v2/dags/{_q(dag_id)}", params={"update_mask": "is_paused"}, json={"is_paused": paused}
            )
        )

    def unpause(self, dag_id: str) -> dict[str, Any]:
        """Unpause ``dag_id``."""
        return self.set_paused(dag_id, False)

    def pause(self, dag_id: str) -> dict[str, Any]:
        """Pause ``dag_id``."""
        return self.set_paused(dag_id, True)

    def import_errors(self) -> list[dict[str, Any]]:
        """``GET /api/v2/importErrors`` (all pages): filename, stack_trace, bundle_name, ..."""
        return list(self._paged("/api/v2/importErrors", "import_errors"))

    # ------------------------------------------------------------------ DAG runs
    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any] | None = None,
        logical_date: datetime | str | None = None,
        run_id: str | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v2/dags/{dag_id}/dagRuns``; returns the DAG run (``dag_run_id``, ``state``, ...).

        ``logical_date`` is a required key of the body in Airflow 3 (null allowed).
        """
        body: dict[str, Any] = {"logical_date": _iso(logical_date), "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if note is not None:
            body["note"] = note
        return dict(self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json=body))

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}``."""
        return dict(self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"))

    def dag_runs(self, dag_id: str, **filters: Any) -> list[dict[str, Any]]:
        """``GET /api/v2/dags/{dag_id}/dagRuns`` (all pages); ``filters`` are query params
        such as ``state=["success"]``, ``run_type=["backfill"]``, ``order_by="-run_after"``."""
        return list(self._paged(f"/api/v2/dags/{_q(dag_id)}/dagRuns", "dag_runs", filters))

    def wait_dag_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 300.0,
        poll: float = 2.0,
        raise_on_failure: bool = True,
    ) -> str:
        """Poll until the run finishes; return its final state.

        Raises :class:`DagRunError` (task states + tail of failed task logs) if the run
        fails (unless ``raise_on_failure`` is False) or the timeout expires.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in FINISHED_RUN_STATES:
                if state == "success" or not raise_on_failure:
                    return state
                raise DagRunError(self.describe_run(dag_id, run_id, f"DAG run {dag_id}/{run_id} {state}"), state)
            if time.monotonic() > deadline:
                raise DagRunError(
                    self.describe_run(dag_id, run_id, f"DAG run {dag_id}/{run_id} still {state} after {timeout:.0f}s"),
                    state,
                )
            time.sleep(poll)

    def new_run(self, dag_id: str, before: set[str], timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
        """The first run of ``dag_id`` whose id is not in ``before`` (an asset-triggered run, a
        run the UI's trigger form created), as soon as it exists. Raises :class:`DagRunError`
        when none appears within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            runs = [r for r in self.dag_runs(dag_id) if r["dag_run_id"] not in before]
            if runs:
                return dict(runs[0])
            if time.monotonic() >= deadline:
                raise DagRunError(f"no new run of {dag_id} within {timeout:.0f}s", None)
            time.sleep(poll)

    def wait_for_new_run(self, dag_id: str, before: set[str], timeout: float = 600.0) -> dict[str, Any]:
        """:meth:`new_run`, then wait for it to finish (within the same ``timeout``); return it.
        Raises :class:`DagRunError` as :meth:`wait_dag_run`."""
        deadline = time.monotonic() + timeout
        run_id = self.new_run(dag_id, before, timeout)["dag_run_id"]
        self.wait_dag_run(dag_id, run_id, timeout=max(10.0, deadline - time.monotonic()))
        return self.dag_run(dag_id, run_id)

    def describe_run(self, dag_id: str, run_id: str, headline: str, log_lines: int = 40) -> str:
        """Human-readable diagnostics: task instance states and failed tasks' log tails."""
        lines = [headline]
        try:
            tis = self.task_instances(dag_id, run_id)
        except AirflowAPIError as exc:
            return f"{headline}\n(could not list task instances: {exc})"
        for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"])):
            index = f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""
            lines.append(f"  {ti['task_id']}{index}: {ti['state']} (try {ti['try_number']})")
        for ti in tis:
            if ti["state"] in _FAILED_TI_STATES and ti["try_number"] > 0:
                try:
                    text = self.task_log(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                except AirflowAPIError as exc:
                    text = f"(log unavailable: {exc})"
                tail = "\n".join(text.splitlines()[-log_lines:])
                lines.append(f"--- log of {ti['task_id']} try {ti['try_number']}:\n{tail}")
        return "\n".join(lines)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances`` (all pages)."""
        return list(self._paged(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances"))

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """Full task log as text (``GET .../taskInstances/{task_id}/logs/{try_number}``).

        Airflow 3 returns structured messages (``event``, ``timestamp``, ``level``, ...)
        which are flattened into ``timestamp level event key=value`` lines.
        """
        data = self.request(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}",
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        if isinstance(data, str):
            return data
        return "\n".join(_format_log_item(item) for item in data.get("content") or [])

    def clear_run(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Clear every task instance of a run so the scheduler runs it again (the UI's *Clear*);
        returns the cleared task instances."""
        body = {"dag_run_id": run_id, "dry_run": False, "only_failed": False, "reset_dag_runs": True}
        data = self.request("POST", f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances", json=body)
        return list(data.get("task_instances") or [])

    def create_connection(self, conn_id: str, conn_type: str, **fields: Any) -> dict[str, Any]:
        """``POST /api/v2/connections``: a connection stored encrypted with the Fernet key;
        ``fields``: host, port, login, password, schema, extra (a dict)."""
        body: dict[str, Any] = {"connection_id": conn_id, "conn_type": conn_type, **fields}
        if isinstance(body.get("extra"), dict):
            body["extra"] = json.dumps(body["extra"])
        return dict(self.request("POST", "/api/v2/connections", json=body))

    # ------------------------------------------------------------------ backfills / assets
    def create_backfill(
        self,
        dag_id: str,
        from_date: datetime | str,
        to_date: datetime | str,
        *,
        reprocess_behavior: str = "none",
        max_active_runs: int = 10,
        run_backwards: bool = False,
        dag_run_conf: dict[str, Any] | None = None,
        run_on_latest_version: bool | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v2/backfills``; ``reprocess_behavior`` is none|failed|completed."""
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": _iso(from_date),
            "to_date": _iso(to_date),
            "run_backwards": run_backwards,
            "dag_run_conf": dag_run_conf,
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        if run_on_latest_version is not None:
            body["run_on_latest_version"] = run_on_latest_version
        return dict(self.request("POST", "/api/v2/backfills", json=body))

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        """``GET /api/v2/backfills/{id}`` (``completed_at`` is set once it is done)."""
        return dict(self.request("GET", f"/api/v2/backfills/{backfill_id}"))

    def wait_backfill(self, backfill_id: int, timeout: float = 600.0, poll: float = 3.0) -> dict[str, Any]:
        """Wait until the backfill has ``completed_at``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.backfill(backfill_id)
            if info.get("completed_at"):
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"backfill {backfill_id} not completed after {timeout:.0f}s: {info}")
            time.sleep(poll)

    def asset_events(
        self,
        *,
        source_dag_id: str | None = None,
        source_run_id: str | None = None,
        source_task_id: str | None = None,
        asset_id: int | None = None,
        name_pattern: str | None = None,
        order_by: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /api/v2/assets/events`` (all pages) filtered by the given fields."""
        params = {
            "source_dag_id": source_dag_id,
            "source_run_id": source_run_id,
            "source_task_id": source_task_id,
            "asset_id": asset_id,
            "name_pattern": name_pattern,
            "order_by": order_by,
        }
        return list(
            self._paged("/api/v2/assets/events", "asset_events", {k: v for k, v in params.items() if v is not None})
        )

    def assets(self) -> list[dict[str, Any]]:
        """``GET /api/v2/assets`` (all pages)."""
        return list(self._paged("/api/v2/assets", "assets"))

    def asset_id(self, uri: str) -> int:
        """The id of the asset with ``uri`` (it exists once a parsed DAG references it)."""
        for asset in self.assets():
            if asset.get("uri") == uri:
                return int(asset["id"])
        raise AirflowAPIError("GET", "/api/v2/assets", 404, f"no asset with uri {uri!r}")

    def create_asset_event(self, uri: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /api/v2/assets/events``: an external event for the asset ``uri`` (as a user or
        an outside system would send it); returns the event (``id``, ``timestamp``, ...)."""
        body = {"asset_id": self.asset_id(uri), "extra": extra or {}}
        return dict(self.request("POST", "/api/v2/assets/events", json=body))


# Keys repeated on every task log message (or already printed): left out of the text form.
_LOG_NOISE = frozenset(
    {
        "timestamp",
        "event",
        "level",
        "logger",
        "ti_id",
        "try_number",
        "run_id",
        "dag_id",
        "task_id",
        "map_index",
        "filename",
        "lineno",
        "loc",
    }
)


def _format_log_item(item: Any) -> str:
    """One structured log message (dict) or raw line as a text line."""
    if not isinstance(item, dict):
        return str(item)
    extra = {k: v for k, v in item.items() if k not in _LOG_NOISE}
    parts = [str(item.get("timestamp", "")), str(item.get("level", "")), str(item.get("event", ""))]
    parts += [f"{k}={v}" for k, v in extra.items()]
    return " ".join(p for p in parts if p)
