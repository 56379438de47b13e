"""The model spec: the demo loads; each broken spec fails with a message naming file and field."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from include.spec import SpecError, get_spec, load_spec, load_specs

DEMO = Path(__file__).resolve().parents[2] / "include" / "specs" / "flights.yaml"


def test_demo_spec_loads_with_documented_defaults() -> None:
    spec = get_spec("flights")
    assert spec.name == "flights"
    assert spec.dataset.time_column == "sched_dep"
    assert spec.dataset.target.parsed() == ("arr_delay", ">", 15.0)
    assert spec.dataset.label_delay_days == 2
    assert spec.dataset.start == date(2013, 1, 1) and spec.dataset.end == date(2013, 12, 31)
    assert spec.dataset.features.categorical == ["carrier", "origin", "dest"]
    assert "arr_delay" not in spec.dataset.features.all
    # sections left for later issues come with their documented defaults
    assert spec.drift.warn == 0.10 and spec.drift.alert == 0.25 and spec.drift.bins == 10
    assert spec.gate.mode == "enabled"
    assert spec.scoring.batch_size == 65536
    assert len(spec.spec_hash()) == 16


def test_target_rule_applies_to_values() -> None:
    target = get_spec("flights").dataset.target
    import numpy as np

    assert target.apply(np.array([-3.0, 15.0, 15.5, 200.0])).tolist() == [False, False, True, True]


def _demo() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _write(tmp_path: Path, data: dict, name: str = "flights") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _mutate(data: dict, dotted: str, value: object) -> dict:
    node = data
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DELETE = object()

BROKEN = [
    pytest.param(
        "dataset.label_delay_days",
        -1,
        "dataset.label_delay_days: expected input should be greater than or equal to 0, got -1",
        id="negative-delay",
    ),
    pytest.param(
        "dataset.label_delay_days",
        "two",
        "dataset.label_delay_days: expected input should be a valid integer",
        id="delay-not-int",
    ),
    pytest.param(
        "dataset.target.expression",
        "arr_delay is late",
        "dataset.target: expected expected '<column> <op> <value>'",
        id="bad-target-rule",
    ),
    pytest.param(
        "dataset.time_column", _DELETE, "dataset.time_column: required field is missing", id="missing-time-column"
    ),
    pytest.param("dataset.featurez", {}, "dataset.featurez: unknown field", id="unknown-field"),
    pytest.param(
        "dataset.features.numeric",
        ["distance", "arr_delay"],
        "target column 'arr_delay' is also a feature (label leakage)",
        id="leaky-feature",
    ),
    pytest.param(
        "dataset.features.categorical",
        ["carrier", "distance"],
        "listed as both numeric and categorical: ['distance']",
        id="both-kinds",
    ),
    pytest.param("dataset.end", "2012-01-01", "end (2012-01-01) is before start (2013-01-01)", id="end-before-start"),
    pytest.param(
        "dataset.source",
        {"kind": "file", "path": "nope.csv"},
        "dataset.source.path: file not found",
        id="missing-source-file",
    ),
    pytest.param(
        "dataset.source",
        {"kind": "s3"},
        "dataset.source.kind: expected input should be 'builtin' or 'file'",
        id="bad-source-kind",
    ),
    pytest.param(
        "training.holdout_days", 40, "holdout_days (40) must be smaller than window_days (28)", id="holdout-too-long"
    ),
    pytest.param("drift.alert", 0.05, "alert (0.05) must be >= warn (0.1)", id="alert-below-warn"),
    pytest.param(
        "gate.mode",
        "yolo",
        "gate.mode: expected input should be 'enabled', 'dry_run' or 'disabled'",
        id="bad-gate-mode",
    ),
    pytest.param(
        "dataset.key_columns",
        ["../etc"],
        "dataset.key_columns.0: expected string should match pattern",
        id="unsafe-column-name",
    ),
    pytest.param("name", "Flights!", "name: expected string should match pattern", id="bad-model-name"),
    pytest.param(
        "gate.approval_timeout", 0, "gate.approval_timeout: expected input should be greater than", id="no-time"
    ),
    pytest.param(
        "gate.approval_timeout",
        "soon",
        "gate.approval_timeout: expected input should be a valid timedelta",
        id="unreadable-timeout",
    ),  # fmt: skip
    pytest.param(
        "dataset.slice_columns", ["distance"], "slice columns must be categorical features", id="numeric-slice"
    ),
    pytest.param(
        "scoring.allow_missing", ["carrier"], "scoring.allow_missing must name numeric features", id="allow-missing-cat"
    ),
    pytest.param(
        "scoring.reason_codes", 15, "scoring.reason_codes (15) exceeds the 14 features", id="too-many-reason-codes"
    ),
    pytest.param("scoring.reason_codes", -1, "scoring.reason_codes: expected input should be greater than", id="k<0"),
]


@pytest.mark.parametrize(("field", "value", "message"), BROKEN)
def test_broken_spec_names_file_field_and_expectation(tmp_path: Path, field: str, value: object, message: str) -> None:
    path = _write(tmp_path, _mutate(_demo(), field, value))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert text.startswith(f"{path}: "), text
    assert message in text, text


def test_name_must_match_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, _demo(), name="other")
    with pytest.raises(SpecError, match=r"other.yaml: name: expected the file name 'other', got 'flights'"):
        load_spec(path)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML"):
        load_spec(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SpecError, match=r"bad.yaml: expected a mapping at the top level, got list"):
        load_spec(bad)


def test_load_specs_separates_good_from_bad(tmp_path: Path) -> None:
    _write(tmp_path, _demo())
    _write(tmp_path, _mutate(_mutate(_demo(), "name", "broken"), "dataset.partition", "hourly"), name="broken")
    good, bad = load_specs(tmp_path)
    assert [s.name for s in good] == ["flights"]
    assert list(bad) == [tmp_path / "broken.yaml"]
    assert "dataset.partition: expected input should be 'daily'" in str(bad[tmp_path / "broken.yaml"])


def test_file_source_resolves_relative_to_spec(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("t,k,x,y\n2024-01-01,1,2.0,3\n")
    data = {
        "name": "tiny",
        "dataset": {
            "source": {"kind": "file", "path": "data.csv"},
            "time_column": "t",
            "target": {"expression": "y > 1"},
            "key_columns": ["k"],
            "features": {"numeric": ["x"]},
            "start": "2024-01-01",
            "end": "2024-01-31",
        },
    }
    spec = load_spec(_write(tmp_path, data, name="tiny"))
    assert spec.source_path() == tmp_path / "data.csv"
    assert spec.label_column == "label"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (72, timedelta(hours=72)),
        (0.5, timedelta(minutes=30)),
        ("PT30S", timedelta(seconds=30)),
        ("P2D", timedelta(days=2)),
    ],
)
def test_approval_timeout_is_hours_or_an_iso_duration(tmp_path: Path, value: object, expected: timedelta) -> None:
    assert (
        load_spec(_write(tmp_path, _mutate(_demo(), "gate.approval_timeout", value))).gate.approval_timeout == expected
    )
    assert load_spec(_write(tmp_path, _demo())).gate.approval_timeout == timedelta(hours=72)
