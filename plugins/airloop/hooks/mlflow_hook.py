"""MlflowHook: where the MLflow tracking server is, from the ``mlflow_default`` connection.

Connection (type ``http``): host, port and schema (``http``/``https``), e.g.
``AIRFLOW_CONN_MLFLOW_DEFAULT='{"conn_type": "http", "host": "mlflow", "port": 5000}'``.
Without the connection the hook falls back to ``MLFLOW_TRACKING_URI``. The URI is passed to
the ``include`` functions explicitly; nothing is written into ``os.environ``.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook


class MlflowConfigError(RuntimeError):
    pass


class MlflowHook(BaseHook):
    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "http"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id or self.default_conn_name

    def tracking_uri(self) -> str:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except Exception:  # noqa: BLE001 - any lookup failure means "no such connection": fall back
            conn = None
        if conn is not None and conn.host:
            if "://" in conn.host:
                return conn.host.rstrip("/")
            scheme = conn.schema or "http"
            port = f":{conn.port}" if conn.port else ""
            return f"{scheme}://{conn.host}{port}"
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise MlflowConfigError(
                f"no MLflow server configured: create the Airflow connection {self.mlflow_conn_id!r} "
                "(type http, host and port of the tracking server) or set MLFLOW_TRACKING_URI"
            )
        return uri

    def get_conn(self) -> str:
        return self.tracking_uri()
