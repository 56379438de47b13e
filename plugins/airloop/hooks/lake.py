"""LakeHook: the lake of ``AIRLOOP_LAKE_URI``, with S3 credentials from an Airflow connection.

Credentials never live in code, Params or environment variables set by an operator: for an
``s3://`` lake the hook reads the AWS connection (``aws_default`` unless
``AIRLOOP_LAKE_CONN_ID`` names another): login = access key id, password = secret key,
extra ``endpoint_url`` (MinIO, moto) and ``region_name``.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from include.lake import Lake, S3Options


class LakeHook(BaseHook):
    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "airloop lake"

    def __init__(self, lake_uri: str | None = None, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake_uri = lake_uri
        self.aws_conn_id = aws_conn_id or os.environ.get("AIRLOOP_LAKE_CONN_ID") or self.default_conn_name

    def s3_options(self) -> S3Options:
        from include.lake import S3Options

        conn = self.get_connection(self.aws_conn_id)
        extra = conn.extra_dejson
        return S3Options(
            access_key=conn.login or extra.get("aws_access_key_id"),
            secret_key=conn.password or extra.get("aws_secret_access_key"),
            session_token=extra.get("aws_session_token"),
            region=extra.get("region_name") or "us-east-1",
            endpoint_url=extra.get("endpoint_url")
            or (extra.get("service_config", {}).get("s3", {}).get("endpoint_url")),
        )

    @cached_property
    def lake(self) -> Lake:
        from include.lake import Lake, default_lake_uri

        uri = self.lake_uri or default_lake_uri()
        return Lake(uri, s3=self.s3_options() if uri.startswith("s3://") else None)

    def get_conn(self) -> Lake:
        return self.lake
