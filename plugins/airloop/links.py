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


def _report_link(class_name: str, name: str, key: str) -> type[_ReportLink]:
    """A link class named ``class_name`` (Airflow keys a link's XCom by its class name)."""
    return type(class_name, (_ReportLink,), {"name": name, "key": key, "__module__": __name__})


DataDocsLink = _report_link("DataDocsLink", "Data Docs", "data_docs")
ValidationJsonLink = _report_link("ValidationJsonLink", "Validation result (JSON)", "validation_json")
MlflowRunLink = _report_link("MlflowRunLink", "MLflow run", "mlflow_run")
ModelVersionLink = _report_link("ModelVersionLink", "Model version", "model_version")
GateReportLink = _report_link("GateReportLink", "Gate report", "gate_report")
ModelCardLink = _report_link("ModelCardLink", "Model card", "model_card")
DriftReportLink = _report_link("DriftReportLink", "Drift report (Evidently)", "drift_report")
ReplayReportLink = _report_link("ReplayReportLink", "Replay report", "replay_report")
