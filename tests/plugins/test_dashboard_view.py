"""The airloop view: HTML of the model page (plotly figures as JSON, tables with exact numbers)
and the plugin's routes behind Airflow's auth, on a lake written by the real include functions."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airloop.dashboard_view import PREDICTION_ROW, dashboard_charts, index_html, model_html
from include.dashboard import (
    AlertInfo,
    ModelIndex,
    ModelSummary,
    TimelineEvent,
    gather_dashboard,
    gather_index,
    summarize,
)
from include.reports.format import fmt_auc, fmt_psi
from tests.dashboard_world import (
    DRIFT_DAYS,
    INVALID_ESTIMATE_DAY,
    MODEL,
    OLD_SHAPE_DAY,
    REJECT_DAY,
    REJECT_ROWS,
    SCORE_DAYS,
    World,
)


def page_charts(page: str) -> dict[str, Any]:
    """The chart figures a page embeds (what plotly.js draws)."""
    found = re.search(r'<script type="application/json" id="airloop-charts">(.*?)</script>', page, re.S)
    assert found, "no chart JSON in the page"
    charts: dict[str, Any] = json.loads(found.group(1))
    return charts


def row_of(page: str, table_id: str, first_cell: str) -> list[str]:
    """The cells (text, tags stripped, list items joined by "; ") of the row of ``table_id`` whose
    first cell is ``first_cell``."""
    table = page[page.index(f'id="{table_id}"') :]
    table = table[: table.index("</table>")]
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"</li>\s*<li", "; <li", c))).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in {table_id}")


def test_model_page_shows_the_recorded_numbers(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    page = model_html(dash)
    # plotly.js comes from the plugin's route, nothing from the internet
    assert '<script src="../static/plotly.min.js"></script>' in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    charts = page_charts(page)
    assert set(charts) == {"timeline-chart", "psi-heatmap", "psi-score", "volume-chart", "performance-chart"}
    for chart_id in charts:
        assert f'<div id="{chart_id}" class="chart"' in page

    # heatmap: the predictions' PSI on top, then one row per feature, the PSI compute_drift measured
    heat = charts["psi-heatmap"]["data"][0]
    assert heat["customdata"][0] == [d.isoformat() for d in SCORE_DAYS]
    assert heat["y"][0] == PREDICTION_ROW and len(heat["y"]) == 1 + len(dash.features)
    for i, day in enumerate(SCORE_DAYS):
        report = dashboard_world.reports[day]
        assert heat["text"][0][i] == fmt_psi(report.prediction.psi)
        for j, name in enumerate(dash.features, start=1):
            assert heat["text"][j][i] == fmt_psi(report.feature(name).psi), (day, name)
    distance = heat["text"][1 + dash.features.index("distance")]
    assert all(float(distance[SCORE_DAYS.index(d)]) >= dash.alert for d in DRIFT_DAYS)
    alert_level = max(max(v for v in row if v is not None) for row in heat["z"])
    assert heat["z"][1 + dash.features.index("distance")][SCORE_DAYS.index(DRIFT_DAYS[1])] == alert_level
    # retrain days: framed on the heatmap, a line on the score, volume and performance charts
    (retrain,) = dash.retrain_days
    frames = [s for s in charts["psi-heatmap"]["layout"]["shapes"] if s["type"] == "rect"]
    assert [f["name"] for f in frames] == [f"retrain {retrain}"] and frames[0]["x0"] == SCORE_DAYS.index(retrain) - 0.5
    for chart_id in ("psi-score", "volume-chart", "performance-chart"):
        lines = [s for s in charts[chart_id]["layout"]["shapes"] if s["type"] == "line"]
        assert [s["x0"] for s in lines] == [retrain.isoformat()], chart_id
    bands = {s["name"]: (s["y0"], s["y1"]) for s in charts["psi-score"]["layout"]["shapes"] if s["type"] == "rect"}
    assert bands["warn band: 0.1 <= PSI < 0.25"] == (0.1, 0.25)
    score, prediction = charts["psi-score"]["data"]
    assert score["y"] == [dashboard_world.reports[d].score for d in SCORE_DAYS]
    assert prediction["y"] == [dashboard_world.reports[d].prediction.psi for d in SCORE_DAYS]

    # volume: bars and table carry the exact counts
    scored, rejected, changes = charts["volume-chart"]["data"]
    volume = {v.day: v for v in dash.volume}
    index = SCORE_DAYS.index(REJECT_DAY)
    assert (scored["x"][index], rejected["y"][index]) == (REJECT_DAY.isoformat(), len(REJECT_ROWS))
    assert scored["y"][index] == volume[REJECT_DAY].rows_scored
    assert changes["text"] == ["promote v3"] and changes["x"] == ["2013-01-07"]  # the change inside the window
    assert row_of(page, "volume-table", REJECT_DAY.isoformat()) == [
        str(REJECT_DAY),
        str(volume[REJECT_DAY].rows_in),
        str(volume[REJECT_DAY].rows_scored),
        str(len(REJECT_ROWS)),
        "v1",
        f"nonfinite:distance: {len(REJECT_ROWS)}",
    ]
    assert f'<div class="big">{dash.total_rows_scored}</div>' in page

    # ledger timeline: every event in order, with the user strings of the ledger
    timeline = charts["timeline-chart"]["data"][0]
    assert timeline["text"] == ["promote v1", "reject v2", "promote v3", "rollback v1"]
    assert row_of(page, "ledger-table", "2013-01-10 08:00")[1:6] == [
        "rollback",
        "v1",
        "v3",
        "",
        "v3 scores drift on day one",
    ]
    assert row_of(page, "ledger-table", "2013-01-07 18:00")[4] == "alice"
    assert 'id="registry-error"' in page


def test_verdicts_show_the_deciding_figure_and_the_signals(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    page = model_html(dash)
    (retrain,) = dash.retrain_days
    record = dashboard_world.records[retrain]
    decided = next(s for s in record["verdict"]["signals"] if s["kind"] == "data_drift")
    row = row_of(page, "drift-table", retrain.isoformat())
    assert row[2] == f"data drift {fmt_psi(decided['value'])} vs 0.25"  # the figure that decided
    assert row[4] == "retrain on data drift"
    fired = [s for s in record["verdict"]["signals"] if s["fired"]]
    assert {s["kind"] for s in fired} == {"data_drift", "performance_drop"}
    drop = next(s for s in fired if s["kind"] == "performance_drop")["value"]
    assert row[5] == f"data drift {fmt_psi(decided['value'])} vs 0.25; performance drop {drop:.4f} vs 0"
    assert row[6] == ""
    # the day the predictions drifted but the features did not: prediction drift decided, held as no impact
    day = date_of("2013-01-07")
    signals = {s["kind"]: s for s in dashboard_world.records[day]["verdict"]["signals"]}
    assert signals["prediction_drift"]["fired"] and not signals["data_drift"]["fired"]
    row = row_of(page, "drift-table", day.isoformat())
    assert row[2] == f"prediction drift {fmt_psi(signals['prediction_drift']['value'])} vs 0.25"
    assert f"prediction drift {fmt_psi(signals['prediction_drift']['value'])} vs 0.25 (no_impact)" in row[6]
    assert row[5] == ""
    # the day after the retrain: cooldown holds what fired
    after = DRIFT_DAYS[1]
    assert dashboard_world.records[after]["verdict"]["cooldown"]
    assert "(cooldown)" in row_of(page, "drift-table", after.isoformat())[6]
    # a record of the older shape still shows its max PSI as the figure
    old = dashboard_world.records[OLD_SHAPE_DAY]
    assert "signals" not in old["verdict"] and "estimated_performance" not in old
    assert (
        row_of(page, "drift-table", OLD_SHAPE_DAY.isoformat())[2]
        == f"data drift {fmt_psi(old['drift']['score'])} vs 0.25"
    )


def test_performance_lines_carry_their_intervals(dashboard_world: World) -> None:
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    page = model_html(dash)
    low, high, realized, e_low, e_high, estimated, reference = page_charts(page)["performance-chart"]["data"]
    labelled = [r for r in dashboard_world.records.values() if r["performance"]]
    assert realized["x"] == [r["performance"]["label_day"] for r in labelled]
    assert realized["y"] == [r["performance"]["roc_auc"] for r in labelled]
    assert low["y"] == [r["performance"]["drop"]["ci_low"] for r in labelled]
    assert high["y"] == [r["performance"]["drop"]["ci_high"] for r in labelled] and high["fill"] == "tonexty"
    with_estimate = [r for r in dashboard_world.records.values() if r.get("estimated_performance")]
    assert estimated["x"] == [r["partition"] for r in with_estimate] and len(with_estimate) == len(SCORE_DAYS) - 1
    assert estimated["y"] == [r["estimated_performance"]["auc"] for r in with_estimate]
    assert (e_low["y"], e_high["y"]) == (
        [r["estimated_performance"]["low"] for r in with_estimate],
        [r["estimated_performance"]["high"] for r in with_estimate],
    )
    assert estimated["marker"]["symbol"][-1] == "x" and set(estimated["marker"]["symbol"][:-1]) == {"circle"}
    assert set(reference["y"]) == {0.7123}
    first = labelled[0]["performance"]
    assert row_of(page, "realized-table", first["label_day"])[2:6] == [
        fmt_auc(first["roc_auc"]),
        f"[{fmt_auc(first['drop']['ci_low'])}, {fmt_auc(first['drop']['ci_high'])}]",
        "0.7123",
        "yes" if first["drop"]["significant"] else "no",
    ]
    invalid = dashboard_world.records[INVALID_ESTIMATE_DAY]["estimated_performance"]
    assert row_of(page, "estimated-table", INVALID_ESTIMATE_DAY.isoformat())[1] == fmt_auc(invalid["auc"])
    assert row_of(page, "estimated-table", INVALID_ESTIMATE_DAY.isoformat())[5] == f"no: {invalid['note']}"


def test_champion_panel_shows_its_importance_and_what_shifted(dashboard_world: World) -> None:
    from dataclasses import replace

    from include.dashboard import VersionInfo
    from include.registry.explain import importance_shift

    base = {f"c{i}": 0.01 * (8 - i) for i in range(8)}  # c0 .. c7, largest first
    # the new champion leans on c7 (last before) and no longer on c5 (first before)
    rows = importance_shift({"mean": {**base, "c7": 0.2, "c5": 0.0}, "std": {}}, {"mean": {**base, "c5": 0.2}})
    dash = replace(
        gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None),
        champion=VersionInfo(version=4),
        champion_importance=tuple(rows),
        champion_compared_with=3,
    )
    page = model_html(dash)
    assert "How it decides (vs v3)" in page
    # the top 5 and every shifted column: c5, now last, is shown
    shown = [r.feature for r in dash.champion_importance_shown]
    assert shown == ["c7", "c0", "c1", "c2", "c3", "c5"]
    assert row_of(page, "champion-importance", "c7") == [
        "c7",
        "0.38",  # 0.2 / 0.52
        "0.02",  # 0.01 / 0.53
        "shift share 0.02 -> 0.38; entered the top 3 (rank 1, was rank 8)",
    ]
    assert row_of(page, "champion-importance", "c5") == ["c5", "0.00", "0.38", "shift share 0.38 -> 0.00"]
    assert row_of(page, "champion-importance", "c1") == ["c1", "0.13", "0.13", ""]
    assert 'id="champion-importance"' not in model_html(replace(dash, champion_importance=()))


def test_figures_are_valid_plotly_and_user_strings_are_escaped(dashboard_world: World) -> None:
    import plotly.graph_objects as go

    from include.dashboard import last_days

    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None)
    for figure in dashboard_charts(dash).values():
        go.Figure(figure)  # raises on any property plotly does not know
    from dataclasses import replace

    hostile = replace(dash, model="<img src=x onerror=alert(1)>", registry_error="</script><b>&")
    page = model_html(last_days(hostile, 2), plotly_src=None)
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;/script&gt;&lt;b&gt;&amp;" in page
    assert "<script src=" not in page and "Plotly.newPlot" in page and len(page) > 3_000_000  # inlined
    assert page_charts(page)["volume-chart"]["data"][0]["x"] == [d.isoformat() for d in SCORE_DAYS[-2:]]


def index_row(page: str, model: str) -> list[str]:
    """The cells of ``model``'s row on the index, the lines of a cell (its ``div``s) joined by newlines."""
    return row_of(page.replace("<div", "\n<div"), "models", model)


def test_index_row_per_model_with_its_figures(dashboard_world: World, tmp_path: Path) -> None:
    now = datetime(2013, 1, 12, 8, tzinfo=UTC)
    index = gather_index(dashboard_world.lake, None, now=now, models=[MODEL, "taxi"])
    page = index_html(index)
    assert "<script" not in page  # no plotly: the sparklines are inline SVG
    assert '<a href="models/flights">flights</a>' in page and '<a href="models/taxi">taxi</a>' in page
    assert page.count('href="models/') == 2  # one link per row: the model's dashboard
    row = index.rows[0]
    newest = dashboard_world.records[SCORE_DAYS[-1]]
    labelled = [r["performance"] for r in dashboard_world.records.values() if r["performance"]]
    estimate = newest["estimated_performance"]
    verdict = newest["verdict"]["state"] + (
        f" on {newest['verdict']['trigger']}" if newest["verdict"]["trigger"] else ""
    )
    low = min(*(p.roc_auc for p in row.realized), *(p.auc for p in row.estimated))
    high = max(*(p.roc_auc for p in row.realized), *(p.auc for p in row.estimated))
    assert index_row(page, MODEL) == [
        MODEL,
        "v1 · 2 days\nsince 2013-01-10 (ledger)",  # the rollback to v1, two days before "now"
        f"{verdict}\n{SCORE_DAYS[-1]}",
        f"{fmt_auc(labelled[-1]['roc_auc'])}\n{labelled[-1]['label_day']}",
        f"{fmt_auc(estimate['auc'])} not valid\n{SCORE_DAYS[-1]}",
        f"realized (solid) and estimated (dotted) ROC AUC, last 30 days: {fmt_auc(low)} to {fmt_auc(high)}",
        "0",
        "none",
        "closed",
    ]
    # the sparkline: one point per realized and per estimated day, on one scale inside the box
    svg = page[page.index('<svg class="spark"') : page.index("</svg>")]
    points = {
        name: [tuple(map(float, xy.split(","))) for xy in found.split()]
        for name, found in re.findall(r'<polyline class="(\w+)" points="([^"]+)"', svg)
    }
    assert len(points["realized"]) == len(labelled) and len(points["estimated"]) == len(SCORE_DAYS) - 1
    series = {"realized": [p.roc_auc for p in row.realized], "estimated": [p.auc for p in row.estimated]}
    for name, values in series.items():  # the highest AUC at the top (y = 2), the lowest at the bottom (y = 26)
        assert [y for _, y in points[name]] == pytest.approx(
            [2 + 24 * (high - v) / (high - low) for v in values], abs=0.05
        )
    # days left to right across both: the first labelled day (01-05) to the last estimate (01-09)
    assert (points["realized"][0][0], points["estimated"][-1][0]) == (2.0, 118.0)
    # each line ends in a dot at its newest point: a model with one monitored day still shows it
    dots = dict(re.findall(r'<circle class="(\w+)-newest" cx="([^"]+)"', svg))
    assert {name: float(x) for name, x in dots.items()} == {k: v[-1][0] for k, v in points.items()}
    assert row.realized[0].label_day == date_of("2013-01-05") and row.estimated[-1].day == SCORE_DAYS[-1]
    assert index_row(page, "taxi")[1:3] == ["none", "not monitored yet"]
    assert 'id="registry-unreachable"' not in page and "registry-cell" not in page


def test_index_shows_alerts_pending_breaker_and_the_unreachable_registry(dashboard_world: World) -> None:
    from dataclasses import replace

    now = datetime(2013, 1, 12, 8, tzinfo=UTC)
    dash = gather_dashboard(dashboard_world.lake, MODEL, tracking_uri=None, volume=False)
    opened = replace(dash.drift[-1], circuit_open=True, reasons=("data_drift circuit breaker open: 3 rejected",))
    pending = TimelineEvent(
        datetime(2013, 1, 11, 9, tzinfo=UTC), "pending", 4, 1, "waits <shadow> days", None, None, None
    )
    alerts = [
        AlertInfo(now - timedelta(hours=h), f"drift alert {h}", "flights__monitor", "monitor", "drift_warn")
        for h in (2, 30)
    ]
    row = replace(
        summarize(replace(dash, drift=(*dash.drift[:-1], opened), timeline=(*dash.timeline, pending)), alerts, now),
        registry_unreachable=True,
    )
    page = index_html(ModelIndex(rows=(row,), now=now, registry_error="MLflow registry at http://x unreachable"))
    cells = index_row(page, MODEL)
    assert cells[1].endswith("registry unreachable") and cells[1].startswith("v1 · 2 days")
    assert cells[6] == "2\nnewest 2013-01-12 06:00" and 'title="drift_warn: drift alert 2"' in page
    assert cells[7] == "v4 since 2013-01-11" and 'title="waits &lt;shadow&gt; days"' in page
    assert (
        cells[8] == "open"
        and 'class="breaker breaker-open" title="data_drift circuit breaker open: 3 rejected"' in page
    )
    broken = index_html(ModelIndex(rows=(ModelSummary(model="<img src=x>", error="LakeError: <bad>"),), now=now))
    assert "<img src=x>" not in broken and index_row(broken, "<img src=x>")[1] == "records unreadable: LakeError: <bad>"
    banner = page[page.index('id="registry-unreachable"') :]
    assert banner[: banner.index("</p>")].endswith(
        '<span class="detail">MLflow registry at http://x unreachable</span>'
    )


def test_routes_require_an_airflow_user_and_serve_the_page(
    dashboard_world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airloop.web import create_app
    from include.reports.render import plotly_js

    monkeypatch.setenv("AIRLOOP_LAKE_URI", dashboard_world.lake.uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", '{"conn_type": "http"}')  # no host: no registry
    app = create_app()
    anonymous = TestClient(app)
    assert anonymous.get("/models").status_code in (401, 403)
    assert anonymous.get(f"/models/{MODEL}").status_code in (401, 403)
    assert anonymous.get("/static/plotly.min.js").status_code in (401, 403)

    app.dependency_overrides[get_user] = lambda: object()
    client = TestClient(app)
    index = client.get("/models")
    assert index.status_code == 200 and f'href="models/{MODEL}"' in index.text
    assert index_row(index.text, MODEL)[1].startswith("v1 · ") and "(ledger)" in index_row(index.text, MODEL)[1]
    assert 'id="registry-unreachable"' not in index.text  # no registry configured is not "unreachable"
    page = client.get(f"/models/{MODEL}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert set(page_charts(page.text)) >= {"psi-heatmap", "volume-chart"}
    assert "<b>90 days</b>" in page.text and '<a href="?days=0">all</a>' in page.text
    last_two = page_charts(client.get(f"/models/{MODEL}?days=2").text)
    assert len(last_two["volume-chart"]["data"][0]["x"]) == 2 and len(last_two["timeline-chart"]["data"][0]["x"]) == 4
    script = client.get("/static/plotly.min.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert script.text == plotly_js() and "max-age" in script.headers["cache-control"]
    assert client.get("/models/..%2Fetc").status_code == 404


def date_of(text: str) -> Any:
    from datetime import date

    return date.fromisoformat(text)


def test_routes_answer_within_two_seconds_when_mlflow_hangs(
    dashboard_world: World, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    import mlflow.utils.rest_utils  # noqa: F401 (imported once per API server process, ~1.7 s)
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airloop.web import create_app

    monkeypatch.setenv("AIRLOOP_LAKE_URI", dashboard_world.lake.uri)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": silent_port})
    )
    app = create_app()
    app.dependency_overrides[get_user] = lambda: object()
    client = TestClient(app)
    pages = {}
    for path, banner in ((f"/models/{MODEL}", 'id="registry-error"'), ("/models", 'id="registry-unreachable"')):
        start = time.perf_counter()
        page = client.get(path)
        seconds = time.perf_counter() - start
        assert page.status_code == 200 and seconds < 2.0, (path, seconds)
        shown = page.text[page.text.index(banner) :]
        assert shown.index("MLflow registry unreachable") < shown.index("</p>") and "timed out" in shown
        pages[path] = page.text
    assert set(page_charts(pages[f"/models/{MODEL}"])) >= {"psi-heatmap", "volume-chart"}  # the lake half
    assert index_row(pages["/models"], MODEL)[1].endswith("registry unreachable")
