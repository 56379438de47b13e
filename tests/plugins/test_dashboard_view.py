"""The airloop view: HTML of the model page (plotly figures as JSON, tables with exact numbers)
and the plugin's routes behind Airflow's auth, on a lake written by the real include functions."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from airloop.dashboard_view import PREDICTION_ROW, dashboard_charts, index_html, model_html
from include.dashboard import gather_dashboard
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


def test_index_links_every_model() -> None:
    page = index_html(["flights", "taxi"])
    assert '<a href="models/flights">flights</a>' in page and '<a href="models/taxi">taxi</a>' in page
    assert "<script" not in page  # no chart, no plotly


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
