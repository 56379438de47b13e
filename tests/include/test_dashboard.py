"""The airloop view's data: gathered from a lake the real include functions wrote, and from a real
MLflow registry; the numbers must be exactly those the writers recorded."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from include.dashboard import (
    OPEN_ALERT_DAYS,
    REGISTRY_BUDGET_S,
    Dashboard,
    TimelineEvent,
    alert_records,
    drift_days,
    gather_dashboard,
    gather_index,
    last_days,
    model_names,
    pending_approvals,
    prediction_volume,
    registry_versions,
    summarize,
)
from include.lake import Lake, Zone
from include.registry.explain import importance_shift, write_importance_record
from tests.dashboard_world import (
    DRIFT_DAYS,
    INVALID_ESTIMATE_DAY,
    LEDGER,
    MODEL,
    OLD_SHAPE_DAY,
    REJECT_DAY,
    REJECT_ROWS,
    SCORE_DAYS,
    VERSION_OF_DAY,
    World,
)


def test_prediction_volume_counts_scored_and_rejected_rows(dashboard_world: World) -> None:
    volume = prediction_volume(dashboard_world.lake, MODEL)
    assert [v.day for v in volume] == SCORE_DAYS
    for v in volume:
        scored = dashboard_world.lake.read_table(Zone.PREDICTIONS, MODEL, v.day).num_rows
        assert v.rows_in == dashboard_world.validated_rows[v.day]
        assert v.rows_scored == scored
        assert v.rows_rejected == v.rows_in - scored
        assert v.model_version == VERSION_OF_DAY[v.day]
    by_day = {v.day: v for v in volume}
    assert by_day[REJECT_DAY].rows_rejected == len(REJECT_ROWS)
    assert by_day[REJECT_DAY].reject_reasons == {"nonfinite:distance": len(REJECT_ROWS)}
    assert sum(v.rows_rejected for v in volume) == len(REJECT_ROWS)


def test_dashboard_reads_drift_verdicts_realized_auc_and_ledger(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    assert dash.registry_error == "no MLflow tracking URI configured"
    assert dash.champion is None and dash.versions == ()
    assert (dash.warn, dash.alert) == (0.1, 0.25)  # the flights spec's drift policy

    # PSI per feature and day: exactly what compute_drift measured
    assert [d.day for d in dash.drift] == SCORE_DAYS
    for day in dash.drift:
        report = dashboard_world.reports[day.day]
        assert day.score == report.score
        assert day.status == report.status
        for feature in report.features:
            assert day.psi[feature.name] == feature.psi, (day.day, feature.name)
        assert day.verdict == dashboard_world.records[day.day]["verdict"]["state"]
        assert day.model_version == VERSION_OF_DAY[day.day]
    distance = {d.day: d.psi["distance"] for d in dash.drift}
    assert all(distance[d] >= dash.alert for d in DRIFT_DAYS)
    assert all(distance[d] < dash.warn for d in SCORE_DAYS if d not in DRIFT_DAYS)
    assert set(dash.features) >= {"distance", "carrier", "sched_hour"}

    # retrain events: the days whose verdict was retrain (a drifted day completing M of N alerts)
    retrains = tuple(d for d in SCORE_DAYS if dashboard_world.records[d]["verdict"]["state"] == "retrain")
    assert dash.retrain_days == retrains and len(retrains) == 1 and retrains[0] in DRIFT_DAYS

    # realized ROC AUC: the days whose labels had arrived (label delay 2 days)
    expected = [
        (date.fromisoformat(r["partition"]), r["performance"])
        for r in dashboard_world.records.values()
        if r["performance"]
    ]
    assert [(p.day, p.label_day) for p in dash.realized] == [
        (day, date.fromisoformat(perf["label_day"])) for day, perf in expected
    ]
    assert [p.label_day for p in dash.realized] == [date(2013, 1, 5), date(2013, 1, 6), date(2013, 1, 7)]
    for point, (_, perf) in zip(dash.realized, expected, strict=True):
        assert point.roc_auc == perf["roc_auc"] and point.rows == perf["rows"]
        assert point.reference_auc == 0.7123
        assert 0.5 < point.roc_auc < 1.0

    # the ledger, oldest first, rollback included
    assert [(e.action, e.version, e.previous_version) for e in dash.timeline] == [
        (action, version, previous) for _, action, version, previous, *_ in LEDGER
    ]
    assert dash.timeline[2].approver == "alice"
    assert dash.timeline[3].reason == "v3 scores drift on day one"
    assert [e.action for e in dash.champion_changes] == ["promote", "promote", "rollback"]
    assert (
        dash.total_rows_scored == sum(dashboard_world.validated_rows[d] for d in SCORE_DAYS) - len(REJECT_ROWS) == 4283
    )


def test_dashboard_reads_signals_trigger_and_estimates(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    by_day = {d.day: d for d in dash.drift}
    for day in SCORE_DAYS:
        verdict = dashboard_world.records[day]["verdict"]
        gathered = by_day[day]
        assert [(s.kind, s.value, s.threshold, s.fired, s.held_by) for s in gathered.signals] == [
            (s["kind"], s["value"], s["threshold"], s["fired"], s["held_by"]) for s in verdict.get("signals", [])
        ]
        assert gathered.trigger == verdict.get("trigger")
        assert gathered.prediction_psi == dashboard_world.reports[day].prediction.psi
    (retrain,) = dash.retrain_days
    assert by_day[retrain].trigger == "data_drift" and by_day[retrain].deciding.kind == "data_drift"
    assert by_day[retrain].deciding.value == dashboard_world.reports[retrain].score
    assert {s.kind for s in by_day[retrain].fired} == {"data_drift", "performance_drop"} and not by_day[retrain].held
    cooldown = by_day[DRIFT_DAYS[1]]
    assert cooldown.trigger is None and {s.held_by for s in cooldown.held} == {"cooldown"} and not cooldown.fired
    # an older record without signals: its max PSI against drift.alert is the figure shown
    old = by_day[OLD_SHAPE_DAY]
    assert old.signals == () and old.deciding.kind == "data_drift"
    assert (old.deciding.value, old.deciding.threshold) == (dashboard_world.reports[OLD_SHAPE_DAY].score, dash.alert)

    # realized AUC intervals come from the bootstrap of performance_drop
    for point in dash.realized:
        drop = next(
            r["performance"]["drop"] for r in dashboard_world.records.values() if r["partition"] == str(point.day)
        )
        assert (point.low, point.high, point.significant) == (drop["ci_low"], drop["ci_high"], drop["significant"])
        assert point.low is not None and point.high is not None and point.low < point.roc_auc < point.high
    # estimates: every record that has one, the invalid one with its note
    estimates = {e.day: e for e in dash.estimated}
    assert sorted(estimates) == [d for d in SCORE_DAYS if d != OLD_SHAPE_DAY]
    for day, estimate in estimates.items():
        recorded = dashboard_world.records[day]["estimated_performance"]
        assert (estimate.auc, estimate.low, estimate.high, estimate.rows) == (
            recorded["auc"],
            recorded["low"],
            recorded["high"],
            recorded["rows"],
        )
        assert 0.5 < estimate.auc < 1.0 and estimate.valid == (day != INVALID_ESTIMATE_DAY)
    assert "concept drift" in estimates[INVALID_ESTIMATE_DAY].note
    assert [e.day for e in last_days(dash, 2).estimated] == SCORE_DAYS[-2:]


def test_last_days_keeps_the_newest_days_and_the_whole_ledger(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    two = last_days(dash, 2)
    assert [d.day for d in two.drift] == [v.day for v in two.volume] == SCORE_DAYS[-2:]
    assert [p.day for p in two.realized] == SCORE_DAYS[-2:]  # by the day the labels arrived
    assert two.retrain_days == tuple(d for d in dash.retrain_days if d in SCORE_DAYS[-2:])
    assert two.timeline == dash.timeline and two.features == dash.features
    assert last_days(dash, 0) is dash and last_days(dash, 365) == dash


def test_empty_model_gives_an_empty_dashboard(tmp_path: Path) -> None:
    dash = gather_dashboard(Lake(tmp_path.as_uri()), MODEL, tracking_uri=None)
    assert (dash.drift, dash.volume, dash.realized, dash.timeline, dash.retrain_days) == ((), (), (), (), ())
    assert MODEL in model_names(Lake(tmp_path.as_uri()))


def test_registry_champion_challenger_and_versions(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    name = "dashboard_registry"
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.create_experiment(f"{name}-exp")
    client.create_registered_model(name)
    runs = {}
    for number, (auc, gate) in enumerate([(0.7012, "promoted"), (0.7234, None)], start=1):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "roc_auc", auc)
        client.log_metric(run.info.run_id, "pr_auc", auc - 0.3)
        client.set_terminated(run.info.run_id)
        tags = {"airloop.estimator": "logistic_regression", "airloop.data_window": "2013-01-01..2013-01-28"}
        tags["metric.roc_auc"] = f"{auc:.6g}"
        if gate:
            tags["airloop.gate"] = gate
            tags["airloop.promoted_at"] = PROMOTED_AT.isoformat()
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags)
        assert int(version.version) == number
        runs[number] = run
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")

    champion, challenger, versions = registry_versions(mlflow_server, name)
    assert champion is not None and challenger is not None
    assert (champion.version, champion.aliases, champion.gate) == (1, ("champion",), "promoted")
    assert champion.promoted_at == PROMOTED_AT and challenger.promoted_at is None
    assert champion.metrics == {"pr_auc": pytest.approx(0.4012), "roc_auc": 0.7012}
    assert champion.experiment_id == experiment and champion.run_id == runs[1].info.run_id
    assert (challenger.version, challenger.roc_auc, challenger.gate) == (2, 0.7234, None)
    assert [v.version for v in versions] == [2, 1]

    dash = gather_dashboard(Lake(tmp_path.as_uri()), name, mlflow_server)
    assert dash.registry_error is None and dash.champion == champion
    assert (dash.champion_importance, dash.champion_compared_with) == ((), None)  # no card record yet
    # the champion's card record (written at its promotion): its importance against v0's
    rows = importance_shift(
        {"mean": {"hour": 0.01, "visib": 0.05, "dest": 0.02}, "std": {}}, {"mean": {"hour": 0.05, "dest": 0.02}}
    )
    write_importance_record(Lake(tmp_path.as_uri()), name, 1, 0, rows)
    dash = gather_dashboard(Lake(tmp_path.as_uri()), name, mlflow_server)
    assert dash.champion_compared_with == 0 and dash.champion_importance == tuple(rows)
    assert [(r.feature, r.shifted) for r in dash.champion_importance] == [
        ("visib", True),
        ("dest", False),
        ("hour", True),
    ]
    # a record that is not what the card writes leaves the panel out, not the page
    Path(Lake(tmp_path.as_uri()).report_path(name, "cards", "v1.importance.json")).write_text('{"features": [{}]}')
    dash = gather_dashboard(Lake(tmp_path.as_uri()), name, mlflow_server)
    assert dash.registry_error is None and dash.champion_importance == ()
    assert registry_versions(mlflow_server, "never_registered") == (None, None, [])

    # the index reads the same registry: no ledger here, so the age comes from airloop.promoted_at
    (row,) = gather_index(
        Lake(tmp_path.as_uri()), mlflow_server, now=PROMOTED_AT + timedelta(days=3, hours=1), models=[name]
    ).rows
    assert (row.champion, row.champion_source, row.champion_since, row.champion_age_days) == (
        1,
        "registry",
        PROMOTED_AT,
        3,
    )
    assert not row.registry_unreachable and row.registry_error is None


PROMOTED_AT = datetime(2013, 2, 1, 12, tzinfo=UTC)
T = TypeVar("T")


def assert_lake_half(dash: Dashboard, world: World) -> None:
    """Everything the lake holds is on the page, exactly as without a registry."""
    offline = gather_dashboard(world.lake, MODEL, tracking_uri=None)
    assert dash.registry_unreachable and dash.registry_error and "unreachable" in dash.registry_error
    assert (dash.champion, dash.challenger, dash.versions) == (None, None, ())
    assert replace(dash, registry_error=None, registry_unreachable=False) == replace(offline, registry_error=None)
    assert [d.day for d in dash.drift] == [v.day for v in dash.volume] == SCORE_DAYS
    assert len(dash.timeline) == len(LEDGER) and len(dash.realized) == 3 and len(dash.estimated) == len(SCORE_DAYS) - 1


def timed(call: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``(result, seconds)``. MLflow's REST module is imported first: the API server imports it
    once per process (about 1.7 s), and the bound is on waiting for the registry, per page."""
    import mlflow.utils.rest_utils  # noqa: F401

    start = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - start


def test_unreachable_registry_keeps_the_lake_half(dashboard_world: World) -> None:
    # nothing listens on port 9: refused at once, no retry (MLflow's default client took ~4 minutes)
    dash, seconds = timed(gather_dashboard, dashboard_world.lake, MODEL, tracking_uri="http://127.0.0.1:9")
    assert seconds < 2.0, f"the page waited {seconds:.2f} s on a registry that is down"
    assert "Connection refused" in (dash.registry_error or "")
    assert_lake_half(dash, dashboard_world)


def test_silent_registry_times_out_within_the_bound(dashboard_world: World, silent_port: int) -> None:
    uri = f"http://127.0.0.1:{silent_port}"
    environment = dict(os.environ)
    dash, seconds = timed(gather_dashboard, dashboard_world.lake, MODEL, tracking_uri=uri)
    assert REGISTRY_BUDGET_S - 0.1 < seconds < 2.0, seconds  # it waited for the budget, then gave up
    assert "timed out" in (dash.registry_error or "")
    assert_lake_half(dash, dashboard_world)
    # the index: one budget for the whole page, not one per model
    index, seconds = timed(gather_index, dashboard_world.lake, uri, models=[MODEL, "taxi", "fraud"])
    assert seconds < 2.0, seconds
    assert index.registry_error and "timed out" in index.registry_error
    assert [(r.model, r.registry_unreachable, r.champion, r.champion_source) for r in index.rows] == [
        (MODEL, True, 1, "ledger"),  # the ledger's last change: the rollback to v1
        ("taxi", True, None, ""),
        ("fraud", True, None, ""),
    ]
    assert dict(os.environ) == environment  # the reader passes retries and timeout per request


def test_index_row_summarizes_the_model(dashboard_world: World, tmp_path: Path) -> None:
    now = datetime(2013, 1, 12, 8, tzinfo=UTC)
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None, volume=False)
    assert dash.volume == () and dash.drift  # the index reads no prediction footers
    row = summarize(dash, [], now)
    # champion: the ledger's rollback to v1 on 2013-01-10 08:00 (no registry configured)
    rollback = LEDGER[-1][0]
    assert (row.champion, row.champion_source, row.champion_since) == (1, "ledger", rollback)
    assert row.champion_age_days == 2
    # last verdict: the newest drift record
    newest = dashboard_world.records[SCORE_DAYS[-1]]["verdict"]
    assert row.verdict is not None and row.verdict.day == SCORE_DAYS[-1]
    assert (row.verdict.verdict, row.verdict.trigger) == (newest["state"], newest.get("trigger"))
    assert row.breaker == "closed" and not newest["circuit_open"]
    # realized and estimated ROC AUC: the newest of each, and the series for the sparkline
    labelled = [r["performance"] for r in dashboard_world.records.values() if r["performance"]]
    assert row.latest_realized is not None and row.latest_realized.roc_auc == labelled[-1]["roc_auc"]
    assert [p.roc_auc for p in row.realized] == [p["roc_auc"] for p in labelled]
    estimate = dashboard_world.records[SCORE_DAYS[-1]]["estimated_performance"]
    assert row.latest_estimated is not None and row.latest_estimated.auc == estimate["auc"]
    assert not row.latest_estimated.valid and len(row.estimated) == len(SCORE_DAYS) - 1
    assert (row.alerts, row.pending, row.error) == ((), (), None)


def test_open_alerts_are_those_of_the_last_seven_days(tmp_path: Path) -> None:
    lake = Lake(tmp_path.as_uri())
    now = datetime(2013, 1, 12, 8, tzinfo=UTC)
    written = {  # name -> days before now (None: no time in the record, the file's time counts)
        "fresh": 1,
        "edge": OPEN_ALERT_DAYS - 0.01,
        "old": OPEN_ALERT_DAYS + 1,
        "untimed": None,
    }
    for name, days in written.items():
        record = {"model": MODEL, "dag_id": f"{MODEL}__score", "task_id": "score", "message": f"alert {name}"}
        if days is not None:
            record["time"] = (now - timedelta(days=days)).isoformat()
            record["kind"] = "drift_warn"
        lake.write_bytes(lake.report_path(MODEL, "alerts", f"{name}.json"), json.dumps(record).encode())
    lake.write_bytes(lake.report_path(MODEL, "alerts", "broken.json"), b"{not json")
    alerts = alert_records(lake, MODEL)
    assert [a.message for a in alerts] == ["alert untimed", "alert fresh", "alert edge", "alert old"]
    assert alerts[0].time > now  # written today, in 2026: later than the test's "now"
    assert alerts[1].time == now - timedelta(days=1) and alerts[1].task_id == "score"
    assert (alerts[0].kind, alerts[1].kind) == (None, "drift_warn")
    empty = Dashboard(MODEL, None, None, (), (), (), (), (), (), (), 0.1, 0.25)
    row = summarize(empty, alerts, now)
    assert [a.message for a in row.alerts] == ["alert fresh", "alert edge"]
    assert summarize(empty, alerts, datetime.now(UTC) + timedelta(minutes=1)).alerts[0].message == "alert untimed"
    assert (row.champion, row.verdict, row.breaker, row.champion_age_days) == (None, None, "unknown", None)


def test_pending_approval_and_breaker_state(dashboard_world: World) -> None:
    def event(day: int, action: str, version: int) -> TimelineEvent:
        when = datetime(2013, 1, day, 9, tzinfo=UTC)
        return TimelineEvent(when, action, version, 1, f"{action} v{version}", None, None, None)

    history = [event(11, "pending", 4), event(11, "pending", 5), event(12, "reject", 5), event(12, "pending", 6)]
    assert [(p.version, p.since.day, p.summary) for p in pending_approvals(history)] == [
        (4, 11, "pending v4"),
        (6, 12, "pending v6"),
    ]
    assert [p.version for p in pending_approvals(history, champion=6)] == [4]
    # a newer challenger superseded v4 while it waited for approval: nothing pending any more
    assert [p.version for p in pending_approvals([*history, event(13, "superseded", 4)])] == [6]
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None, volume=False)
    row = summarize(replace(dash, timeline=(*dash.timeline, *history)), [], datetime(2013, 1, 13, tzinfo=UTC))
    assert [p.version for p in row.pending] == [4, 6]

    # breaker flags of the newest verdict, as the monitor writes them
    record = json.loads(json.dumps(dashboard_world.records[SCORE_DAYS[-1]]))
    reason = "data_drift circuit breaker open: the last 3 data_drift challengers were rejected by the gate"
    record["verdict"].update(circuit_open=True, half_open=False, reasons=[reason, "PSI below warn"])
    (opened,) = drift_days([record])
    assert (opened.breaker, opened.breaker_reasons) == ("open", (reason,))
    record["verdict"]["half_open"] = True
    assert drift_days([record])[0].breaker == "half-open"
    assert summarize(replace(dash, drift=(*dash.drift, opened)), [], datetime.now(UTC)).breaker == "open"
