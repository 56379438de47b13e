"""The airloop web app, mounted by the plugin on Airflow's API server at ``/airloop``.

Serves the lake's ``reports/`` (Data Docs, validation JSON, model cards, drift reports), the
airloop view (``/airloop/models``: the model index; ``/airloop/models/<model>``: the model's
dashboard, see ``dashboard_view.py``; MLflow is read with no retries and one short time budget
per page, so both answer within 2 seconds with a "registry unreachable" banner when it is down) and ``/airloop/static/plotly.min.js`` (the plotly.js
bundle of the installed plotly package, which draws the dashboard's charts: served once and
cached by the browser rather than inlined in every page) to signed-in Airflow users. Airflow does not
authenticate plugin apps, so every route depends on Airflow's own ``get_user`` (the UI's
session cookie or a bearer token).
"""

from __future__ import annotations

import mimetypes
from typing import Any


def create_app() -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, Response

    app = FastAPI(title="airloop", dependencies=[Depends(get_user)])

    @app.get("/reports/{model}/{kind}/{name}")
    def report(model: str, kind: str, name: str) -> Response:
        from airloop.hooks.lake import LakeHook
        from include.lake import LakeError

        lake = LakeHook().lake
        try:
            data = lake.read_bytes(lake.report_path(model, kind, name))
        except LakeError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(content=data, media_type=media)

    @app.get("/static/plotly.min.js")
    def plotly_js() -> Response:
        """plotly.js from the installed plotly package: no CDN, works offline. The URL does not
        change with the plotly version, so browsers revalidate daily rather than keep it forever."""
        from include.reports.render import plotly_js

        return Response(
            content=plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "private, max-age=86400"},
        )

    def tracking_uri() -> str | None:
        from airloop.hooks.mlflow_hook import MlflowConfigError, MlflowHook

        try:
            return MlflowHook().tracking_uri()
        except MlflowConfigError:
            return None

    @app.get("/models", response_class=HTMLResponse)
    def models() -> HTMLResponse:
        """One row per model: champion and its age, last verdict, performance, alerts, breaker."""
        from airloop.dashboard_view import index_html
        from airloop.hooks.lake import LakeHook
        from include.dashboard import gather_index

        return HTMLResponse(index_html(gather_index(LakeHook().lake, tracking_uri())))

    @app.get("/models/{model}", response_class=HTMLResponse)
    def model_page(model: str, days: int = 90) -> HTMLResponse:
        """The model's dashboard over its last ``days`` days (``days=0``: everything)."""
        from airloop.dashboard_view import model_html
        from airloop.hooks.lake import LakeHook
        from include.dashboard import gather_dashboard, last_days
        from include.lake import LakeError

        lake = LakeHook().lake
        uri = tracking_uri()
        try:
            dashboard = gather_dashboard(lake, model, uri)
        except LakeError as exc:  # an unsafe or unknown model name
            raise HTTPException(status_code=404, detail=str(exc)) from None
        return HTMLResponse(model_html(last_days(dashboard, days), mlflow_url=uri, days=days))

    return app
