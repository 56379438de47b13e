"""The step registry: one parameters object per step, the same in every mode.

Every registered step is called in-process (:func:`include.steps.run`), through
``airloop step <name> --params`` and the generated ``airloop <name> --<field>``, and through the
docker command (:func:`include.steps.step_command`); the step function must receive the same
parameters object each time. Ingest also runs for real in subprocesses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from include import steps
from include.cli import build_parser, main, step_flag
from include.lake import Lake
from tests.process import run_ok

ROOT = Path(__file__).resolve().parents[2]
MLFLOW = "http://mlflow.invalid:5000"
NOW = datetime(2013, 1, 4, 6, 30, tzinfo=UTC)

# One value per field of every step, none of them the field's default: a field a mode dropped
# would arrive as its default and fail the comparison.
EXAMPLES: dict[str, dict[str, Any]] = {
    "ingest": {"ds": date(2013, 1, 4)},
    "validate": {"ds": date(2013, 1, 4), "run_key": "run__try2"},
    "train": {
        "end": date(2013, 1, 20),
        "reason": "manual: parity",
        "tags": {"airloop.step": "train", "airloop.dag_run_id": "manual__1"},
        "decisions": ["d1", "d2"],
        "window_days": 14,
        "search_budget": 3,
        "estimator": "logistic_regression",
        "trigger": "performance_drop",
        "break_day": date(2013, 1, 15),
    },
    "evaluate": {"mode": "dry_run", "report_key": "manual__1"},
    "promote": {
        "report_uri": "file:///lake/reports/flights/gate/d1.json",
        "approval": {"chosen_options": ["Approve"], "params_input": {"comment": "ok"}},
        "now": NOW,
        "dag_id": "flights__promote",
        "run_id": "manual__1",
    },
    "rollback": {"target_version": 3, "reason": "bad day", "now": NOW, "dag_id": "flights__rollback", "run_id": "r"},
    "breaker-reset": {
        "by": "alice",
        "reason": "fixed the feed",
        "now": NOW,
        "dag_id": "flights__breaker_reset",
        "run_id": "r",
    },
    "rescore-plan": {"version": 1, "previous_version": 2},
    "rescore": {
        "ds": date(2013, 1, 4),
        "version": 1,
        "replaces": 2,
        "reason": "bad v2",
        "run_key": "asset__1",
        "run_id": "asset__1",
        "now": NOW,
    },
    "pin": {"ds": date(2013, 1, 4), "run_key": "manual__1"},
    "score": {
        "ds": date(2013, 1, 4),
        "version": 5,
        "index": 1,
        "start": 900,
        "end": 1800,
        "n_shards": 2,
        "run_key": "manual__1",
        "run_id": "manual__1",
    },
    "publish": {"ds": date(2013, 1, 4), "n_shards": 2, "run_key": "manual__1"},
    "shadow": {"ds": date(2013, 1, 4), "run_id": "manual__1"},
    "monitor": {"ds": date(2013, 1, 4)},
    "replay": {
        "start": date(2013, 1, 1),
        "end": date(2013, 2, 1),
        "run_key": "manual__1",
        "policies": ["frozen", "drift"],
        "calendar_days": 3,
        "window_days": 10,
        "search_budget": 1,
    },
}


def _flags(params: steps.StepParams) -> list[str]:
    """The generated subcommand's arguments for ``params``: what a person would type."""
    argv = []
    for name, value in params.model_dump(mode="json").items():
        if isinstance(value, list):
            text = ",".join(value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        argv.append(f"{step_flag(name)}={text}")
    return argv


def _recording(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[steps.StepParams, steps.StepEnv]]:
    """Replace step ``name``'s function by one that records what it is called with."""
    calls: list[tuple[steps.StepParams, steps.StepEnv]] = []

    def record(params: steps.StepParams, env: steps.StepEnv) -> dict[str, Any]:
        calls.append((params, env))
        return {"step": name, "seen": params.model_dump(mode="json")}

    monkeypatch.setitem(steps.STEPS, name, dataclasses.replace(steps.STEPS[name], func=record))
    return calls


def test_every_step_has_an_example_setting_every_field() -> None:
    assert set(EXAMPLES) == set(steps.STEPS)
    for name, entry in steps.STEPS.items():
        assert set(EXAMPLES[name]) | {"spec"} == set(entry.params.model_fields), name
        defaults = entry.params.model_construct()
        assert all(getattr(defaults, f, None) != v for f, v in EXAMPLES[name].items()), name


def test_generated_subcommands_have_one_flag_per_parameter_field() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands["step"]._option_string_actions) >= {"--params", "--lake", "--tracking-uri"}
    for name, entry in steps.STEPS.items():
        if name == "replay":  # `airloop replay` is the hand-written replay to a folder
            assert commands[name].get_default("func").__name__ == "cmd_replay"
            continue
        flags = {a.dest for a in commands[name]._actions if a.option_strings} - {"help", "lake", "tracking_uri"}
        assert flags == set(entry.params.model_fields), name
        required = {a.dest for a in commands[name]._actions if a.required}
        assert required == {f for f, info in entry.params.model_fields.items() if info.is_required()}, name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_mode_gives_the_step_the_same_parameters(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _recording(monkeypatch, name)
    lake = Lake((tmp_path / "lake").as_uri())
    expected = steps.STEPS[name].params(spec="flights", **EXAMPLES[name])
    env_args = ["--lake", lake.uri, "--tracking-uri", MLFLOW]

    assert steps.run(name, expected, lake, MLFLOW) == {"step": name, "seen": expected.model_dump(mode="json")}
    assert main(["step", name, "--params", expected.model_dump_json(), *env_args]) == 0
    command = steps.step_command(name, expected)
    assert command[:3] == ["airloop", "step", name]
    assert main([*command[1:], *env_args]) == 0  # what the container runs
    modes = 3
    if name != "replay":
        generated = [name, *_flags(expected), "--lake", lake.uri]
        if steps.STEPS[name].needs_mlflow:
            generated += ["--tracking-uri", MLFLOW]
        assert main(generated) == 0
        modes += 1
    assert [params for params, _ in calls] == [expected] * modes
    mlflow = MLFLOW if steps.STEPS[name].needs_mlflow else None
    assert {(env.spec.name, env.lake.uri, env.mlflow_uri) for _, env in calls} == {("flights", lake.uri, mlflow)}
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [{"step": name, "seen": expected.model_dump(mode="json")}] * (modes - 1)


def test_a_new_field_reaches_the_step_in_every_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a parameter is one field on the model (plus whoever sets it): nothing else to write."""

    class ScoreWithThreshold(steps.ScoreParams):
        threshold: steps.OptInt = Field(None, description="a new parameter")

    seen: list[Any] = []
    entry = dataclasses.replace(
        steps.STEPS["score"], name="score2", params=ScoreWithThreshold, func=lambda p, env: seen.append(p) or {}
    )
    monkeypatch.setitem(steps.STEPS, "score2", entry)
    params = ScoreWithThreshold(spec="flights", **EXAMPLES["score"], threshold=7)
    lake = Lake((tmp_path / "lake").as_uri())
    env_args = ["--lake", lake.uri, "--tracking-uri", MLFLOW]
    steps.run("score2", params, lake, MLFLOW)
    assert main([*steps.step_command("score2", params)[1:], *env_args]) == 0
    assert main(["score2", *_flags(params), *env_args]) == 0
    assert main(["score2", *_flags(params.model_copy(update={"threshold": None})), *env_args]) == 0  # --threshold=None
    assert [p.threshold for p in seen] == [7, 7, 7, None]
    assert seen[:3] == [params] * 3


def test_values_are_coerced_once_and_bad_ones_name_the_step_and_field() -> None:
    train = steps.get_step("train")
    parsed = train.parse(
        {
            "spec": "flights",
            "end": "2013-01-20",
            "window_days": "None",
            "search_budget": "12",
            "estimator": "",
            "decisions": "a,b",
            "tags": '{"k": "v"}',
        }
    )
    assert (parsed.end, parsed.window_days, parsed.search_budget, parsed.estimator) == (
        date(2013, 1, 20),
        None,
        12,
        None,
    )
    assert (parsed.decisions, parsed.tags) == (["a", "b"], {"k": "v"})
    assert train.parse({"spec": "flights", "end": "2013-01-20", "decisions": '["c"]'}).decisions == ["c"]
    assert steps.get_step("evaluate").parse({"spec": "flights", "mode": "None"}).mode is None
    with pytest.raises(ValueError, match=r"step 'train' parameters: window_days: Input should be a valid integer"):
        train.parse({"spec": "flights", "end": "2013-01-20", "window_days": "two weeks"})
    with pytest.raises(ValueError, match=r"step 'evaluate' parameters: mode: Input should be 'enabled'"):
        steps.get_step("evaluate").parse({"spec": "flights", "mode": "yolo"})
    with pytest.raises(ValueError, match=r"step 'pin' parameters: shards: Extra inputs are not permitted"):
        steps.get_step("pin").parse({"spec": "flights", "ds": "2013-01-04", "shards": 3})
    with pytest.raises(ValueError, match=r"unknown step 'trian': use one of breaker-reset, evaluate, ingest"):
        steps.get_step("trian")


def test_a_step_that_needs_mlflow_refuses_to_start_without_it(tmp_path: Path) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    with pytest.raises(ValueError, match="no MLflow server: pass --tracking-uri or set MLFLOW_TRACKING_URI"):
        steps.run("monitor", {"spec": "flights", "ds": "2013-01-04"}, lake, None)
    assert main(["monitor", "--spec", "flights", "--ds", "2013-01-04", "--lake", lake.uri]) == 2


def test_ingest_in_process_and_both_commands_in_subprocesses_land_the_same_day(tmp_path: Path) -> None:
    params = steps.IngestParams(spec="flights", ds=date(2013, 1, 4))
    lakes = {mode: Lake((tmp_path / mode).as_uri()) for mode in ("run", "step", "generated")}
    results = {"run": steps.run("ingest", params, lakes["run"])}
    env = {k: v for k, v in os.environ.items() if k != "AIRLOOP_LAKE_URI"}
    for mode, argv in (
        ("step", steps.step_command("ingest", params)[1:]),
        ("generated", ["ingest", *_flags(params)]),
    ):
        proc = run_ok(
            [sys.executable, "-m", "include.cli", *argv, "--lake", lakes[mode].uri], cwd=ROOT, env=env, timeout=300
        )
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    normalised = {mode: json.loads(json.dumps(r).replace(lakes[mode].uri, "LAKE")) for mode, r in results.items()}
    assert normalised["step"] == normalised["generated"] == normalised["run"]
    assert set(steps.STEPS["ingest"].result) <= set(normalised["run"])
    assert normalised["run"]["rows"] == 915 and normalised["run"]["landing_uri"].startswith("LAKE/landing/flights/")
    tables = {mode: lake.read_table("landing", "flights", params.ds) for mode, lake in lakes.items()}
    assert tables["step"].equals(tables["run"]) and tables["generated"].equals(tables["run"])
