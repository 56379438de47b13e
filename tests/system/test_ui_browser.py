"""The Airflow UI in a real browser (Debian's Chromium driven by Playwright) on the real stack.

Logs in like a user, opens the airloop view from the navigation, checks that its charts show the
numbers of this run (read independently from MLflow, the ledger and the lake), follows a task's
*MLflow run* extra link, and triggers a training run through the trigger form's Params.
Screenshots go to ``test-artifacts/screenshots/`` (``AIRLOOP_DOCS_SCREENSHOTS=1`` also refreshes
the ones in ``docs/images/``).

Self-sufficient: if the loop test ran earlier in the session the model's state is reused; else a
module fixture trains and promotes a small model and scores and monitors two days via the REST API.

The approval test adds a model that needs a person's approval (tests/system/approval_world.py),
approves its first challenger and rejects the second in *Required actions*, as a user does.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.lake import Zone
from include.registry.ledger import read_ledger
from tests.conftest import ROOT
from tests.mlflow_server import land_validated

pytestmark = pytest.mark.system

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_IMAGES = ROOT / "docs" / "images"
MODEL = "flights"
# Fresh-state path: the same days as the loop test (so a later loop test sees nothing odd).
START, TRAIN_END = date(2013, 1, 18), date(2013, 2, 18)
SCORED_DAYS = (date(2013, 2, 17), date(2013, 2, 19))  # the first gets its labels by the second's monitor run
TIMEOUT_MS = 60_000


@dataclass
class LoopState:
    champion: int
    train_run_id: str  # a successful flights__train run (its task carries the extra links)


@pytest.fixture(scope="module")
def loop_state(system_stack: Any) -> LoopState:
    """A champion, a scored and monitored day: reused from the loop test, else made here."""
    from mlflow import MlflowClient

    from include.registry.mlflow_registry import get_alias_version

    client, lake, stack = system_stack.client, system_stack.lake, system_stack.stack
    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    for step in ("train", "promote", "score", "monitor"):
        client.wait_for_dag(f"{MODEL}__{step}", timeout=180)
        client.unpause(f"{MODEL}__{step}")
    champion = get_alias_version(mlflow, MODEL, "champion")
    if champion is None:
        land_validated(lake, [START + timedelta(days=i) for i in range((SCORED_DAYS[-1] - START).days + 3)])
        promote_runs = {r["dag_run_id"] for r in client.dag_runs(f"{MODEL}__promote")}
        conf = {
            "end_date": TRAIN_END.isoformat(),
            "window_days": 21,
            "search_budget": 1,
            "estimator": "logistic_regression",
            "reason": "browser test setup",
        }
        run = client.trigger(f"{MODEL}__train", conf=conf, run_id="ui_train_1")
        assert client.wait_dag_run(f"{MODEL}__train", run["dag_run_id"], timeout=600) == "success"
        assert client.wait_for_new_run(f"{MODEL}__promote", promote_runs, timeout=600)["state"] == "success"
        champion = get_alias_version(mlflow, MODEL, "champion")
        assert champion is not None
        for ds in SCORED_DAYS:
            run = client.trigger(f"{MODEL}__score", logical_date=f"{ds}T00:00:00+00:00", run_id=f"ui_score_{ds}")
            assert client.wait_dag_run(f"{MODEL}__score", run["dag_run_id"], timeout=600) == "success"
        ds = SCORED_DAYS[-1]
        run = client.trigger(f"{MODEL}__monitor", logical_date=f"{ds}T00:00:00+00:00", run_id=f"ui_monitor_{ds}")
        assert client.wait_dag_run(f"{MODEL}__monitor", run["dag_run_id"], timeout=600) == "success"
    train_runs = [r for r in client.dag_runs(f"{MODEL}__train") if r["state"] == "success"]
    assert train_runs, "no successful training run"
    return LoopState(champion=champion, train_run_id=train_runs[0]["dag_run_id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y --no-install-recommends chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _login(page: Any, stack: Any) -> None:
    """Sign in through the simple auth manager's form."""
    page.goto(stack.api_url)
    page.locator("input[name=username]").fill(stack.username)
    page.locator("input[name=password]").fill(stack.password)
    page.locator("button[type=submit]").click()
    page.get_by_role("link", name="airloop").wait_for()


def _shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def _expected(system_stack: Any, champion: int) -> dict[str, Any]:
    """What the page must show, read independently from MLflow, the ledger and the lake."""
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    stack, lake = system_stack.stack, system_stack.lake
    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    version = mlflow.get_model_version(MODEL, str(champion))
    volume = {}
    for ds in lake.list_partitions(Zone.PREDICTIONS, MODEL):
        scored = lake.read_table(Zone.PREDICTIONS, MODEL, ds).num_rows
        rejects_path = f"{lake.partition_dir(Zone.PREDICTIONS, MODEL, ds)}/_rejects.parquet"
        with lake.fs.open_input_file(rejects_path) as handle:
            rejected = pq.read_metadata(handle).num_rows
        volume[ds.isoformat()] = (scored, rejected)
    records = [
        json.loads(lake.read_bytes(p))
        for p in lake.list_files(lake.path("reports", MODEL, "drift"))
        if p.rsplit("/", 1)[-1].startswith("ds=") and p.endswith(".json")
    ]
    return {
        "champion_auc": mlflow.get_run(version.run_id).data.metrics["roc_auc"],
        "ledger": [(e["action"], str(e["version"])) for e in read_ledger(lake, MODEL)],
        "volume": volume,
        "records": records,
    }


def test_airloop_view_links_and_trigger_form_in_the_browser(
    system_stack: Any, loop_state: LoopState, browser: Any
) -> None:
    started = time.monotonic()
    stack, client = system_stack.stack, system_stack.client
    expected = _expected(system_stack, loop_state.champion)
    assert expected["records"], "the monitor wrote no drift record"

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    # 1. log in (simple auth manager)
    _login(page, stack)
    _shot(page, "01-home")

    # 2. the airloop view from the navigation: index, then the model's dashboard (in the UI's frame)
    page.get_by_role("link", name="airloop").click()
    page.wait_for_url("**/plugin/airloop**")
    frame = page.frame_locator('iframe[title="airloop"]')
    frame.get_by_role("link", name=MODEL).wait_for()
    frame.locator("svg.spark").first.wait_for()  # the row's realized and estimated ROC AUC trend
    _shot(page, "05-airloop-index")
    frame.get_by_role("link", name=MODEL).click()
    frame.locator("#psi-heatmap .main-svg").first.wait_for()  # plotly.js loaded and drew the heatmap
    assert frame.locator("#champion .big").inner_text() == f"v{loop_state.champion}"
    assert frame.locator("#champion .roc-auc").inner_text() == f"{expected['champion_auc']:.4f}"
    _shot(page, "02-airloop-view-in-airflow")

    # 2a. the charts carry this run's numbers (the figures plotly.js drew, from the page's JSON)
    charts = json.loads(frame.locator("#airloop-charts").text_content() or "{}")
    timeline = charts["timeline-chart"]["data"][0]
    assert [tuple(t.split(" v")) for t in timeline["text"]] == expected["ledger"]
    scored, rejected, _ = charts["volume-chart"]["data"]
    for ds, (rows_scored, rows_rejected) in expected["volume"].items():
        index = scored["x"].index(str(ds))
        assert (scored["y"][index], rejected["y"][index]) == (rows_scored, rows_rejected)
    heat = charts["psi-heatmap"]["data"][0]
    days, rows = heat["customdata"][0], [label.removesuffix(" (ignored)") for label in heat["y"]]
    frames = {s["name"] for s in charts["psi-heatmap"]["layout"]["shapes"]}
    realized = next(t for t in charts["performance-chart"]["data"] if t["name"] == "realized ROC AUC (labels)")
    for record in expected["records"]:
        day = record["partition"]
        for name, feature in record["drift"]["features"].items():
            psi = feature["psi"]
            assert heat["text"][rows.index(name)][days.index(day)] == ("n/a" if psi is None else f"{psi:.3f}")
        if record["verdict"]["state"] == "retrain":
            assert f"retrain {day}" in frames
        performance = record.get("performance") or {}
        if performance.get("roc_auc") is not None:
            assert realized["y"][realized["x"].index(performance["label_day"])] == performance["roc_auc"]

    # the whole dashboard, for people (same cookie, outside the frame)
    dash = context.new_page()
    dash.goto(f"{stack.api_url}/airloop/models/{MODEL}")
    dash.locator("#volume-chart .main-svg").first.wait_for()
    _shot(dash, "03-airloop-dashboard", full_page=True)
    dash.close()

    # 3. a task's extra link to MLflow
    page.goto(f"{stack.api_url}/dags/{MODEL}__train/runs/{loop_state.train_run_id}/tasks/train")
    page.get_by_text("Details", exact=True).click()  # the task instance's Details tab lists Extra Links
    link = page.get_by_role("link", name="MLflow run")
    link.wait_for()
    _shot(page, "04-train-task-extra-links")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"{stack.mlflow_url}/#/experiments/") and "/runs/" in href
    with context.expect_page() as opened:
        link.click()
    mlflow_page = opened.value
    mlflow_page.wait_for_load_state()
    assert mlflow_page.url.startswith(stack.mlflow_url)
    run_id = href.rsplit("/runs/", 1)[1].split("/")[0]
    mlflow_page.get_by_text(run_id).first.wait_for()
    _shot(mlflow_page, "05-mlflow-run-from-extra-link")
    mlflow_page.close()

    # 4. trigger a training run through the trigger form (Params with titles and bounds)
    before = {r["dag_run_id"] for r in client.dag_runs(f"{MODEL}__train")}
    page.goto(f"{stack.api_url}/dags/{MODEL}__train")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Training window (days)").wait_for()
    dialog.get_by_text("Hyperparameter search budget").wait_for()
    # number fields are spinbuttons named by their +/- buttons' aria-controls
    budget_id = dialog.locator('[id="number-input:element_search_budget:inc"]').get_attribute("aria-controls")
    dialog.locator(f'[id="{budget_id}"]').fill("1")
    dialog.get_by_role("combobox").click()  # estimator: an enum shown with its values_display
    page.get_by_text("Logistic regression", exact=True).click()
    reason = dialog.locator("#element_reason")
    reason.fill("a reason the user then deletes")
    reason.fill("")  # optional: an emptied reason must not block the trigger (it did while typed "string")
    page.wait_for_timeout(500)
    assert dialog.get_by_text("This field is required").count() == 0
    reason.fill("browser test: trigger form")
    dialog.get_by_text("Hyperparameter search budget").scroll_into_view_if_needed()
    _shot(page, "06-train-trigger-form")
    dialog.get_by_test_id("trigger-dag-submit").click()
    run = client.new_run(f"{MODEL}__train", before, timeout=60)  # the form created a run
    conf = run["conf"]
    assert conf["reason"] == "browser test: trigger form" and conf["search_budget"] == 1
    assert conf["estimator"] == "logistic_regression"
    context.close()

    # the form's choices reach the training (and the run does not outlive this test)
    assert client.wait_dag_run(f"{MODEL}__train", run["dag_run_id"], timeout=600) == "success"
    from mlflow import MlflowClient

    mlflow = MlflowClient(stack.mlflow_url, registry_uri=stack.mlflow_url)
    experiment = mlflow.get_experiment_by_name(f"airloop-{MODEL}")
    trained = mlflow.search_runs(
        [experiment.experiment_id], filter_string="tags.`airloop.reason` LIKE '%browser test: trigger form%'"
    )
    assert [(r.info.status, r.data.tags["airloop.estimator"]) for r in trained] == [("FINISHED", "logistic_regression")]

    if os.environ.get("AIRLOOP_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        for name in (
            "02-airloop-view-in-airflow",
            "03-airloop-dashboard",
            "05-airloop-index",
            "04-train-task-extra-links",
            "06-train-trigger-form",
        ):
            shutil.copyfile(SHOTS / f"{name}.png", DOCS_IMAGES / f"{name}.png")
    print(f"browser test took {time.monotonic() - started:.1f}s")  # shown with -s


def _answer(page: Any, link: str, *, headline: str, option: str, comment: str, shot: str) -> None:
    """Open the required action at ``link``, check it shows the gate report, write the comment,
    choose ``option``."""
    page.goto(link)
    page.get_by_text(headline).wait_for()
    page.get_by_text("min_roc_auc", exact=True).first.wait_for()  # the gate report's checks, as a table
    assert page.get_by_text("| check | threshold |").count() == 0  # Markdown rendered, not shown raw
    page.locator("#element_comment").fill(comment)
    _shot(page, shot)
    page.get_by_role("button", name=option, exact=True).click()


def test_approve_one_challenger_and_reject_another_in_required_actions(
    system_stack: Any, flights_lake: Path, browser: Any
) -> None:
    from tests.system.approval_world import approval_model

    started = time.monotonic()
    stack, client, lake = system_stack.stack, system_stack.client, system_stack.lake
    model = approval_model(system_stack, flights_lake, "appr_ui")
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    _login(page, stack)

    def request(run_id: str) -> str:
        model.wait_awaiting(run_id)
        return f"{stack.api_url}/dags/{model.dag_id}/runs/{run_id}/tasks/approve/required_actions?map_index=-1"

    # the first challenger: approved, it becomes the champion
    v1 = model.register()
    first = client.trigger(model.dag_id, run_id="ui_approve_v1")["dag_run_id"]
    link = request(first)
    alerts = [json.loads(lake.read_bytes(p)) for p in lake.list_files(lake.path("reports", model.name, "alerts"))]
    assert link in [a.get("link") for a in alerts if a["kind"] == "approval_needed"]  # the alert opens this page
    _answer(page, link, headline=f"challenger v{v1} vs champion (none)", option="Approve",
            comment="first model: the gate report is fine", shot="10-approval-request")  # fmt: skip
    assert client.wait_dag_run(model.dag_id, first, timeout=300) == "success"
    assert model.alias("champion") == v1

    # the second: rejected with a comment, nothing moves
    v2 = model.register()
    second = client.trigger(model.dag_id, run_id="ui_reject_v2")["dag_run_id"]
    _answer(page, request(second), headline=f"challenger v{v2} vs champion v{v1}", option="Reject",
            comment="no better than v1: keep it", shot="11-approval-reject")  # fmt: skip
    assert client.wait_dag_run(model.dag_id, second, timeout=300) == "success"
    context.close()

    assert model.alias("champion") == v1
    ledger = [(e["action"], e["version"], e["approver"], e["reason"]) for e in read_ledger(lake, model.name)]
    assert ledger == [
        ("promote", v1, stack.username, "first model: the gate report is fine"),
        ("approval_rejected", v2, stack.username, "no better than v1: keep it"),
    ]
    assert model.tags(v1)["airloop.approved_by"] == stack.username
    rejected = model.tags(v2)
    assert (rejected["airloop.gate"], rejected["airloop.rejected_by"], rejected["airloop.reject_reason"]) == (
        "approval_rejected",
        stack.username,
        "no better than v1: keep it",
    )
    assert model.hitl(second)["responded_by_user"]["name"] == stack.username
    if os.environ.get("AIRLOOP_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHOTS / "11-approval-reject.png", DOCS_IMAGES / "11-approval-reject.png")
    print(f"approval browser test took {time.monotonic() - started:.1f}s")  # shown with -s
