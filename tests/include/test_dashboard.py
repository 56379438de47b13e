"""The airloop view's data: gathered from a lake the real include functions wrote, and from a real
MLflow registry; the numbers must be exactly those the writers recorded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from include.dashboard import gather_dashboard, last_days, model_names, prediction_volume, registry_versions
from include.lake import Lake, Zone
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
        version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id, tags=tags)
        assert int(version.version) == number
        runs[number] = run
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")

    champion, challenger, versions = registry_versions(mlflow_server, name)
    assert champion is not None and challenger is not None
    assert (champion.version, champion.aliases, champion.gate) == (1, ("champion",), "promoted")
    assert champion.metrics == {"pr_auc": pytest.approx(0.4012), "roc_auc": 0.7012}
    assert champion.experiment_id == experiment and champion.run_id == runs[1].info.run_id
    assert (challenger.version, challenger.roc_auc, challenger.gate) == (2, 0.7234, None)
    assert [v.version for v in versions] == [2, 1]

    dash = gather_dashboard(Lake(tmp_path.as_uri()), name, mlflow_server)
    assert dash.registry_error is None and dash.champion == champion
    assert registry_versions(mlflow_server, "never_registered") == (None, None, [])


def test_unreachable_registry_keeps_the_lake_half(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri="http://127.0.0.1:9")
    assert dash.registry_error and "not readable" in dash.registry_error
    assert len(dash.drift) == len(SCORE_DAYS)
