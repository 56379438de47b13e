"""The lake on file:// and on a real S3 API (moto's server): atomic publish, listing, streaming."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from include.lake import Lake, LakeError, S3Options, Zone


@pytest.fixture(params=["file", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "file":
        return Lake((tmp_path / "lake").as_uri())
    endpoint = request.getfixturevalue("s3_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Lake(f"s3://{bucket}/prefix", S3Options("test", "test", endpoint_url=endpoint))


def _table(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"k": pa.array(range(offset, offset + n)), "x": pa.array([float(i) for i in range(n)])})


D1, D2, D3 = date(2013, 1, 1), date(2013, 1, 2), date(2013, 1, 3)


def test_publish_and_read_back(lake: Lake) -> None:
    info = lake.write_partition(Zone.LANDING, "m", D1, _table(10))
    assert info.rows == 10 and info.bytes > 0
    assert info.uri == lake.to_uri(lake.partition_file(Zone.LANDING, "m", D1))
    assert info.uri.endswith("/landing/m/ds=2013-01-01/data.parquet")
    assert lake.read_table(Zone.LANDING, "m", D1).column("k").to_pylist() == list(range(10))


def test_crash_mid_write_leaves_no_visible_partition(lake: Lake) -> None:
    with pytest.raises(RuntimeError, match="simulated crash"):
        with lake.partition_writer(Zone.VALIDATED, "m", D2, _table(1).schema) as writer:
            writer.write_table(_table(5))
            raise RuntimeError("simulated crash")
    assert not lake.has_partition(Zone.VALIDATED, "m", D2)
    assert lake.list_partitions(Zone.VALIDATED, "m") == []
    assert lake.list_files(lake.path("validated")) == []
    assert lake.list_files(lake.path("_tmp")) == []  # the temporary write was discarded


def test_crash_mid_rewrite_keeps_the_previous_version(lake: Lake) -> None:
    lake.write_partition(Zone.LANDING, "m", D1, _table(3))
    with pytest.raises(RuntimeError):
        with lake.partition_writer(Zone.LANDING, "m", D1, _table(1).schema) as writer:
            writer.write_table(_table(100))
            raise RuntimeError("simulated crash")
    assert lake.read_table(Zone.LANDING, "m", D1).num_rows == 3


def test_rewrite_is_idempotent(lake: Lake) -> None:
    lake.write_partition(Zone.LANDING, "m", D1, _table(4))
    lake.write_partition(Zone.LANDING, "m", D1, _table(4))
    assert lake.list_files(lake.path("landing")) == [lake.partition_file(Zone.LANDING, "m", D1)]
    assert lake.read_table(Zone.LANDING, "m", D1).num_rows == 4


def test_list_partitions_by_date_range(lake: Lake) -> None:
    for ds in (D3, D1, D2):
        lake.write_partition(Zone.LABELS, "m", ds, _table(2))
    lake.write_partition(Zone.LABELS, "other", D1, _table(2))
    assert lake.list_partitions(Zone.LABELS, "m") == [D1, D2, D3]
    assert lake.list_partitions(Zone.LABELS, "m", start=D2) == [D2, D3]
    assert lake.list_partitions(Zone.LABELS, "m", start=D1, end=D2) == [D1, D2]
    assert lake.list_partitions(Zone.LABELS, "nobody") == []


def test_streaming_reads_in_bounded_batches(lake: Lake) -> None:
    lake.write_partition(Zone.LANDING, "m", D1, _table(10_000))
    sizes = [b.num_rows for b in lake.read_batches(Zone.LANDING, "m", D1, batch_size=3000)]
    assert sizes == [3000, 3000, 3000, 1000]
    cols = next(lake.read_batches(Zone.LANDING, "m", D1, batch_size=10, columns=["x"])).schema.names
    assert cols == ["x"]


def test_atomic_small_files_and_missing_reads(lake: Lake) -> None:
    path = lake.report_path("m", "validation", "2013-01-01.json")
    uri = lake.write_bytes(path, b'{"ok": true}')
    assert uri.endswith("reports/m/validation/2013-01-01.json")
    assert lake.read_bytes(path) == b'{"ok": true}'
    with pytest.raises(LakeError, match="no such file in the lake"):
        lake.read_bytes(lake.report_path("m", "validation", "absent.json"))
    with pytest.raises(LakeError, match="no such file in the lake"):
        lake.read_table(Zone.LANDING, "m", D3)


def test_move_files_for_quarantine(lake: Lake) -> None:
    lake.write_partition(Zone.LANDING, "m", D1, _table(3))
    src = lake.partition_dir(Zone.LANDING, "m", D1)
    dst = lake.path("quarantine", "m", "ds=2013-01-01", "run1")
    moved = lake.move_partition_files(src, dst)
    assert moved == [lake.to_uri(f"{dst}/data.parquet")]
    assert not lake.has_partition(Zone.LANDING, "m", D1)
    assert lake.parquet_file(f"{dst}/data.parquet").metadata.num_rows == 3


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "..", "x" * 200])
def test_paths_cannot_escape_the_lake(tmp_path: Path, name: str) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    with pytest.raises(LakeError, match="unsafe"):
        lake.partition_dir(Zone.LANDING, name, D1)
    with pytest.raises(LakeError, match="unsafe"):
        lake.report_path("m", "kind", name)


def test_unsupported_scheme() -> None:
    with pytest.raises(LakeError, match="unsupported lake URI 'gs://x'"):
        Lake("gs://x")


def test_s3_options_never_print_secrets() -> None:
    assert "sekrit" not in repr(S3Options("AKIA", "sekrit", endpoint_url="http://127.0.0.1:9"))
