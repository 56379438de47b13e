"""Operator extra links to airloop reports, served by the airloop plugin's web app.

Airflow 3 computes extra links in the worker right after ``execute`` (or
``execute_complete``) and stores them as XCom, so a link reads what the operator recorded
in ``operator.report_links`` during that same run: no extra lookups, and every run links to
its own report.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseOperatorLink


def report_url(relative_path: str) -> str:
    """Browser URL of a lake file under ``reports/`` (served by the plugin at ``/airloop``)."""
    from airflow.sdk import conf

    base = (conf.get("api", "base_url", fallback="") or "http://127.0.0.1:8080").rstrip("/")
    return f"{base}/airloop/{relative_path}"


class _ReportLink(BaseOperatorLink):
    key: ClassVar[str] = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return str(getattr(operator, "report_links", {}).get(self.key, ""))


class DataDocsLink(_ReportLink):
    name = "Data Docs"
    key = "data_docs"


class ValidationJsonLink(_ReportLink):
    name = "Validation result (JSON)"
    key = "validation_json"


class MlflowRunLink(_ReportLink):
    name = "MLflow run"
    key = "mlflow_run"


class ModelVersionLink(_ReportLink):
    name = "Model version"
    key = "model_version"


class GateReportLink(_ReportLink):
    name = "Gate report"
    key = "gate_report"


class ModelCardLink(_ReportLink):
    name = "Model card"
    key = "model_card"


class DriftReportLink(_ReportLink):
    name = "Drift report (Evidently)"
    key = "drift_report"


class ReplayReportLink(_ReportLink):
    name = "Replay report"
    key = "replay_report"
