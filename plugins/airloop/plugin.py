"""AirflowPlugin: the airloop web app (reports and the airloop view) on the API server, its
entry in the Airflow UI's navigation, and the operator extra links.

The view is an ``external_view`` with a ``url_route``: the UI shows it inside its own frame at
``/plugin/airloop`` (same origin, so the UI's session cookie authenticates it); ``href`` is
relative (no leading slash) so it also works when Airflow is served under a sub-path.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airloop.links import (
    DataDocsLink,
    DriftReportLink,
    GateReportLink,
    MlflowRunLink,
    ModelCardLink,
    ModelVersionLink,
    ReplayReportLink,
    ValidationJsonLink,
)
from airloop.web import create_app


class AirloopPlugin(AirflowPlugin):
    name = "airloop"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/airloop", "name": "airloop reports"}]
    external_views = [
        {
            "name": "airloop",
            "href": "airloop/models",
            "url_route": "airloop",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
    operator_extra_links = [
        DataDocsLink(),
        ValidationJsonLink(),
        MlflowRunLink(),
        ModelVersionLink(),
        GateReportLink(),
        ModelCardLink(),
        DriftReportLink(),
        ReplayReportLink(),
    ]
