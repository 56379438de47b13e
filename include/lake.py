"""The data lake: partition paths and atomic, streaming Parquet I/O over file:// and s3://.

Layout under the lake root (``AIRLOOP_LAKE_URI``)::

    <zone>/<model>/ds=YYYY-MM-DD/data.parquet     one published file per partition
    reports/<model>/<kind>/...                    HTML/JSON reports, written atomically
    _tmp/<uuid>/...                               in-flight writes, never read

Design decision: we use ``pyarrow.fs`` for both local files and S3 instead of
fsspec/s3fs. pyarrow is already required for Parquet, its S3 client streams ranged
reads natively, and it keeps us out of the s3fs/aiobotocore/botocore pin war (aiobotocore pins botocore to a narrow range that boto3 and the Amazon provider move past).

Atomic publish: a writer streams into ``_tmp/<uuid>/`` and, only once the file is
complete and closed, moves it to its final name. On a local filesystem the move is a
``rename`` (atomic, overwriting); on S3 it is a server-side copy (atomic per object)
followed by deleting the temporary object. A crash at any point leaves nothing visible
under the partition path, and a rerun simply overwrites its own partition.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"
_PARTITION = re.compile(r"^ds=(\d{4}-\d{2}-\d{2})$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$")


class Zone(enum.StrEnum):
    LANDING = "landing"
    VALIDATED = "validated"
    QUARANTINE = "quarantine"
    LABELS = "labels"
    PREDICTIONS = "predictions"
    SHADOW = "shadow"
    REPORTS = "reports"


class LakeError(RuntimeError):
    """A lake operation failed; the message names the path."""


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3 API. Comes from an Airflow AWS connection (plugins) or AWS_* env."""

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None
    max_attempts: int = 5

    @classmethod
    def from_env(cls) -> S3Options:
        return cls(
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            session_token=os.environ.get("AWS_SESSION_TOKEN"),
            region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        )

    def __repr__(self) -> str:  # never print secrets
        return f"S3Options(region={self.region!r}, endpoint_url={self.endpoint_url!r})"


def default_state_dir() -> Path:
    """The one folder that holds all embedded state (``AIRLOOP_HOME`` or ``./.airloop``)."""
    return Path(os.environ.get("AIRLOOP_HOME") or Path.cwd() / ".airloop").resolve()


def default_lake_uri() -> str:
    return os.environ.get("AIRLOOP_LAKE_URI") or (default_state_dir() / "lake").as_uri()


def safe_key(text: str) -> str:
    """Turn a run id (``scheduled__2013-01-01T00:00:00+00:00``) into one safe path segment."""
    # '..' is collapsed too: a run id like ``manual__v1..v2`` must not become an unsafe segment.
    return re.sub(r"\.{2,}", "_", re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)).strip("._")[:120] or "key"


def _check_name(kind: str, value: str) -> str:
    # Model names and file names become path segments: refuse anything that could escape.
    if not _SAFE_NAME.match(value) or ".." in value:
        raise LakeError(f"unsafe {kind} {value!r}: only letters, digits and _.=- are allowed")
    return value


@dataclass(frozen=True)
class PartitionInfo:
    uri: str
    rows: int
    bytes: int


class Lake:
    """Partitioned Parquet storage with atomic publish; one instance per lake root."""

    def __init__(self, uri: str | None = None, s3: S3Options | None = None) -> None:
        import pyarrow.fs as pafs

        self.uri = (uri or default_lake_uri()).rstrip("/")
        parsed = urlparse(self.uri)
        if parsed.scheme == "file":
            self.fs: pafs.FileSystem = pafs.LocalFileSystem()
            self.root = str(Path(parsed.path))
            Path(self.root).mkdir(parents=True, exist_ok=True)
        elif parsed.scheme == "s3":
            self.fs = _s3_filesystem(s3 or S3Options.from_env())
            self.root = (parsed.netloc + parsed.path).rstrip("/")
        else:
            raise LakeError(f"unsupported lake URI {self.uri!r}: use file:// or s3://")
        self.scheme = parsed.scheme

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    # ---------------------------------------------------------------- paths
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def to_uri(self, path: str) -> str:
        return f"file://{path}" if self.scheme == "file" else f"s3://{path}"

    def partition_dir(self, zone: Zone | str, model: str, ds: date) -> str:
        return self.path(Zone(zone).value, _check_name("model", model), f"ds={ds.isoformat()}")

    def partition_file(self, zone: Zone | str, model: str, ds: date) -> str:
        return f"{self.partition_dir(zone, model, ds)}/{DATA_FILE}"

    def quarantine_dir(self, model: str, ds: date, key: str) -> str:
        """Where a failed partition is kept, one folder per run attempt (never overwritten)."""
        return f"{self.partition_dir(Zone.QUARANTINE, model, ds)}/{_check_name('key', safe_key(key))}"

    def relative(self, path: str) -> str:
        """``path`` relative to the lake root (for links and manifests)."""
        if not path.startswith(self.root + "/"):
            raise LakeError(f"{path} is not inside the lake {self.uri}")
        return path[len(self.root) + 1 :]

    def report_path(self, model: str, kind: str, name: str) -> str:
        return self.path(
            Zone.REPORTS.value, _check_name("model", model), _check_name("kind", kind), _check_name("name", name)
        )

    # ---------------------------------------------------------------- queries
    def exists(self, path: str) -> bool:
        import pyarrow.fs as pafs

        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    def has_partition(self, zone: Zone | str, model: str, ds: date) -> bool:
        return self.exists(self.partition_file(zone, model, ds))

    def list_partitions(
        self, zone: Zone | str, model: str, start: date | None = None, end: date | None = None
    ) -> list[date]:
        """Dates of the published partitions of a zone, inclusive range, sorted."""
        import pyarrow.fs as pafs

        base = self.path(Zone(zone).value, _check_name("model", model))
        infos = self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=False))
        found = []
        for info in infos:
            match = _PARTITION.match(info.base_name)
            if not match:
                continue
            ds = date.fromisoformat(match.group(1))
            if (start and ds < start) or (end and ds > end):
                continue
            if self.exists(f"{info.path}/{DATA_FILE}"):
                found.append(ds)
        return sorted(found)

    def list_files(self, prefix: str) -> list[str]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True, recursive=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    # ---------------------------------------------------------------- reads
    def parquet_file(self, path: str, buffer_size: int = 1 << 20) -> pq.ParquetFile:
        """Open a Parquet file for streaming (``pre_buffer=False``: pre-buffering fetches whole row groups ahead into memory)."""
        import pyarrow.parquet as pq

        try:
            handle = self.fs.open_input_file(path)
            return pq.ParquetFile(handle, pre_buffer=False, buffer_size=buffer_size)
        except FileNotFoundError:
            raise LakeError(f"no such file in the lake: {self.to_uri(path)}") from None
        except OSError as exc:
            raise LakeError(f"cannot read {self.to_uri(path)} as Parquet: {exc}") from exc

    def read_batches(
        self,
        zone: Zone | str,
        model: str,
        ds: date,
        batch_size: int = 65536,
        columns: list[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """Stream a partition in record batches; memory is bounded by ``batch_size``."""
        parquet = self.parquet_file(self.partition_file(zone, model, ds))
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)

    def read_table(self, zone: Zone | str, model: str, ds: date, columns: list[str] | None = None) -> pa.Table:
        return self.parquet_file(self.partition_file(zone, model, ds)).read(columns=columns)

    def read_bytes(self, path: str) -> bytes:
        try:
            with self.fs.open_input_stream(path) as stream:
                return bytes(stream.read())
        except FileNotFoundError:
            raise LakeError(f"no such file in the lake: {self.to_uri(path)}") from None

    # ---------------------------------------------------------------- atomic writes
    def _tmp_path(self, name: str) -> str:
        return self.path("_tmp", uuid.uuid4().hex, name)

    def _publish(self, tmp: str, final: str) -> None:
        """Move a complete temporary file to its final path (atomic for readers)."""
        self._ensure_parent(final)
        self.fs.move(tmp, final)
        with contextlib.suppress(OSError):
            self.fs.delete_dir(tmp.rsplit("/", 1)[0])

    def _ensure_parent(self, path: str) -> None:
        # S3 has no folders: creating them would only add empty marker objects.
        if self.scheme == "file":
            self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    def _discard(self, tmp: str) -> None:
        with contextlib.suppress(OSError, FileNotFoundError):
            self.fs.delete_dir(tmp.rsplit("/", 1)[0])

    @contextlib.contextmanager
    def atomic_output(self, final: str) -> Iterator[Any]:
        """Yield a writable stream; the file appears at ``final`` only after a clean exit."""
        tmp = self._tmp_path(final.rsplit("/", 1)[-1])
        self._ensure_parent(tmp)
        try:
            with self.fs.open_output_stream(tmp) as stream:
                yield stream
        except BaseException:
            self._discard(tmp)
            raise
        self._publish(tmp, final)

    def write_bytes(self, path: str, data: bytes) -> str:
        """Atomically write a small file (report, manifest); returns its URI."""
        with self.atomic_output(path) as stream:
            stream.write(data)
        return self.to_uri(path)

    @contextlib.contextmanager
    def parquet_writer(self, path: str, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
        """A zstd ParquetWriter whose file appears at ``path`` only on a clean exit."""
        import pyarrow.parquet as pq

        with self.atomic_output(path) as stream:
            writer = pq.ParquetWriter(stream, schema, compression="zstd")
            try:
                yield writer
            finally:
                writer.close()

    def partition_writer(
        self, zone: Zone | str, model: str, ds: date, schema: pa.Schema
    ) -> contextlib.AbstractContextManager[pq.ParquetWriter]:
        """Stream record batches into a partition that is published only on a clean exit."""
        return self.parquet_writer(self.partition_file(zone, model, ds), schema)

    def write_partition(self, zone: Zone | str, model: str, ds: date, table: pa.Table) -> PartitionInfo:
        """Atomically (re)write a whole partition from a table."""
        with self.partition_writer(zone, model, ds, table.schema) as writer:
            writer.write_table(table, row_group_size=65536)
        final = self.partition_file(zone, model, ds)
        size = self.fs.get_file_info(final).size or 0
        log.info("published %s rows to %s (%s bytes)", table.num_rows, self.to_uri(final), size)
        return PartitionInfo(uri=self.to_uri(final), rows=table.num_rows, bytes=size)

    def publish_copy(self, src: str, zone: Zone | str, model: str, ds: date) -> PartitionInfo:
        """Atomically publish a copy of the file ``src`` as the partition ``zone/model/ds``."""
        import pyarrow.parquet as pq

        final = self.partition_file(zone, model, ds)
        tmp = self._tmp_path(DATA_FILE)
        self._ensure_parent(tmp)
        try:
            self.fs.copy_file(src, tmp)
        except BaseException:
            self._discard(tmp)
            raise
        self._publish(tmp, final)
        with self.fs.open_input_file(final) as handle:
            rows = pq.ParquetFile(handle).metadata.num_rows
        return PartitionInfo(uri=self.to_uri(final), rows=rows, bytes=self.fs.get_file_info(final).size or 0)

    def move_partition_files(self, src_dir: str, dst_dir: str) -> list[str]:
        """Move every file under ``src_dir`` to ``dst_dir`` (copy first, then delete)."""
        moved = []
        for path in self.list_files(src_dir):
            target = dst_dir + path[len(src_dir) :]
            self._ensure_parent(target)
            self.fs.copy_file(path, target)
            moved.append(self.to_uri(target))
        for path in self.list_files(src_dir):
            self.fs.delete_file(path)
        return moved

    def clean_tmp(self, older_than: timedelta = timedelta(hours=6)) -> int:
        """Delete abandoned in-flight writes (from crashed tasks); returns how many."""
        from datetime import UTC, datetime

        import pyarrow.fs as pafs

        cutoff = datetime.now(UTC) - older_than
        infos = self.fs.get_file_info(pafs.FileSelector(self.path("_tmp"), allow_not_found=True))
        removed = 0
        for info in infos:
            mtime = info.mtime
            if mtime is None and info.type == pafs.FileType.Directory:
                # S3 "folders" have no mtime: judge one by the newest object inside it.
                inner = self.fs.get_file_info(pafs.FileSelector(info.path, allow_not_found=True, recursive=True))
                mtime = max((i.mtime for i in inner if i.mtime is not None), default=None)
            if mtime is not None and mtime.replace(tzinfo=mtime.tzinfo or UTC) < cutoff:
                self._discard(f"{info.path}/x")
                removed += 1
        return removed


def _s3_filesystem(options: S3Options) -> pafs.S3FileSystem:
    import pyarrow.fs as pafs

    endpoint = scheme = None
    if options.endpoint_url:
        parsed = urlparse(options.endpoint_url)
        endpoint, scheme = parsed.netloc or parsed.path, parsed.scheme or "https"
    return pafs.S3FileSystem(
        access_key=options.access_key,
        secret_key=options.secret_key,
        session_token=options.session_token,
        region=options.region,
        endpoint_override=endpoint,
        scheme=scheme or "https",
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=options.max_attempts),
        allow_bucket_creation=False,
        check_directory_existence_before_creation=False,
    )
