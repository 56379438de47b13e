"""The airloop view: HTML of the model page (inline SVG, exact numbers) and the plugin's routes
behind Airflow's auth, on a lake written by the real include functions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airloop.dashboard_view import fmt_auc, fmt_psi, index_html, model_html
from include.dashboard import gather_dashboard
from tests.dashboard_world import DRIFT_DAYS, MODEL, REJECT_DAY, REJECT_ROWS, SCORE_DAYS, World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("dashboard-view"))


def test_model_page_shows_the_recorded_numbers(world: World) -> None:
    dash = gather_dashboard(world.lake, MODEL, tracking_uri=None)
    page = model_html(dash)
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # one heatmap cell per feature and day, carrying the PSI compute_drift measured
    cells = re.findall(r'class="psi-cell" data-feature="([^"]+)" data-day="([^"]+)" data-psi="([^"]+)"', page)
    assert len(cells) == len(dash.features) * len(SCORE_DAYS)
    for name, day, value in cells:
        report = world.reports[next(d for d in SCORE_DAYS if d.isoformat() == day)]
        assert value == fmt_psi(report.feature(name).psi)
    drifted = dict(((n, d), v) for n, d, v in cells)[("distance", DRIFT_DAYS[1].isoformat())]
    assert float(drifted) >= dash.alert
    # warn/alert bands and retrain markers
    assert 'class="band-warn"' in page and 'class="band-alert"' in page
    for day in dash.retrain_days:
        assert page.count(f'class="retrain-marker" data-day="{day}"') == 3  # heatmap, score line, volume bars
    # volume: bars and table carry the exact counts
    volume = {v.day: v for v in dash.volume}
    rejected = volume[REJECT_DAY]
    assert f'class="bar-rejected" data-day="{REJECT_DAY}" data-rows="{len(REJECT_ROWS)}"' in page
    assert f'class="bar-scored" data-day="{REJECT_DAY}" data-rows="{rejected.rows_scored}"' in page
    assert (
        f"<td>{REJECT_DAY}</td><td class=num>{rejected.rows_in}</td><td class=num>{rejected.rows_scored}</td>" in page
    )
    assert f'<div class="big">{dash.total_rows_scored}</div>' in page
    # realized AUC points and the ledger timeline
    for point in dash.realized:
        assert f'class="auc-point" data-day="{point.label_day}" data-auc="{fmt_auc(point.roc_auc)}"' in page
    assert re.findall(r'class="timeline-event" data-action="(\w+)" data-version="(\d+)"', page) == [
        ("promote", "1"),
        ("reject", "2"),
        ("promote", "3"),
        ("rollback", "1"),
    ]
    assert "v3 scores drift on day one" in page and "alice" in page
    assert 'id="registry-error"' in page


def test_index_links_every_model() -> None:
    page = index_html(["flights", "taxi"])
    assert '<a href="models/flights">flights</a>' in page and '<a href="models/taxi">taxi</a>' in page


def test_routes_require_an_airflow_user_and_serve_the_page(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from airloop.web import create_app

    monkeypatch.setenv("AIRLOOP_LAKE_URI", world.lake.uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", '{"conn_type": "http"}')  # no host: no registry
    app = create_app()
    anonymous = TestClient(app)
    assert anonymous.get("/models").status_code in (401, 403)
    assert anonymous.get(f"/models/{MODEL}").status_code in (401, 403)

    app.dependency_overrides[get_user] = lambda: object()
    client = TestClient(app)
    index = client.get("/models")
    assert index.status_code == 200 and f'href="models/{MODEL}"' in index.text
    page = client.get(f"/models/{MODEL}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="psi-heatmap"' in page.text and 'id="volume-chart"' in page.text
    assert "<b>90 days</b>" in page.text and '<a href="?days=0">all</a>' in page.text
    last_two = client.get(f"/models/{MODEL}?days=2").text
    assert last_two.count('class="bar-scored"') == 2 and last_two.count('class="timeline-event"') == 4
    assert client.get("/models/..%2Fetc").status_code == 404
