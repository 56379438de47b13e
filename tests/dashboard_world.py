"""A lake with a few weeks of airloop history, written by the real include functions.

Used by the dashboard tests (with ``silent_port``, a registry that never answers) (``tests/include/test_dashboard.py``, ``tests/plugins/test_dashboard_view.py``):
flights days landed and validated, a logistic regression trained and exported to ONNX, days
scored with :func:`include.scoring.score.score_partition` (one day with planted unscoreable
rows, two days with tripled distances), each scored day monitored with the monitor's own
functions (:func:`compute_drift`, :func:`decide`, :func:`realized_performance`) into a record
of the shape :func:`include.monitoring.monitor.monitor_day` writes, and ledger entries appended
with :func:`include.registry.ledger.append_entry`.

Records after the first also carry the fields of the harm-aware monitor (``verdict.signals``,
``verdict.trigger``, ``estimated_performance``), built by :func:`explain` from the day's
measured numbers; the first record keeps the older shape, without them, as lakes hold both.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

MODEL = "flights"
TRAIN_DAYS = [date(2013, 1, d) for d in (1, 2, 3, 4)]
SCORE_DAYS = [date(2013, 1, d) for d in (5, 6, 7, 8, 9)]
REJECT_DAY = date(2013, 1, 6)
REJECT_ROWS = (0, 7, 11)  # distance set to NaN: rejected as nonfinite:distance
DRIFT_DAYS = (date(2013, 1, 8), date(2013, 1, 9))  # distances tripled: PSI alert on two days -> retrain
VERSION_OF_DAY = {d: (1 if d < date(2013, 1, 8) else 3) for d in SCORE_DAYS}
OLD_SHAPE_DAY = SCORE_DAYS[0]  # its record has no signals, trigger or estimate
INVALID_ESTIMATE_DAY = SCORE_DAYS[-1]  # its estimate is flagged not valid
ESTIMATE_HALF_WIDTH = 0.03
ESTIMATED_DROP_THRESHOLD = 0.05


@dataclass
class World:
    lake: Any
    records: dict[date, dict[str, Any]] = field(default_factory=dict)
    reports: dict[date, Any] = field(default_factory=dict)
    validated_rows: dict[date, int] = field(default_factory=dict)
    ledger_uris: list[str] = field(default_factory=list)


LEDGER = [
    # (time, action, version, previous, approver, reason, summary)
    (
        datetime(2013, 1, 4, 12, tzinfo=UTC),
        "promote",
        1,
        None,
        None,
        None,
        "first model: floors, parity and latency pass",
    ),
    (datetime(2013, 1, 6, 9, tzinfo=UTC), "reject", 2, 1, None, None, "ROC AUC gain CI lower bound -0.020 < -0.01"),
    (datetime(2013, 1, 7, 18, tzinfo=UTC), "promote", 3, 1, "alice", None, "gain +0.012 (CI 0.002..0.021)"),
    (datetime(2013, 1, 10, 8, tzinfo=UTC), "rollback", 1, 3, None, "v3 scores drift on day one", "rolled back"),
]


def expected_auc(scores: Any) -> float:
    """ROC AUC expected if the scores were calibrated probabilities (the idea of confidence-based
    performance estimation): each row is positive with probability ``score``, so a pair (i, j)
    is ordered right with weight ``p_i (1 - p_j)`` when ``s_i > s_j``."""
    import numpy as np

    p = np.sort(np.asarray(scores, dtype=float))
    below = np.concatenate([[0.0], np.cumsum(1.0 - p)[:-1]])  # sum of (1 - p_j) over lower scores
    pairs = p.sum() * (1.0 - p).sum() - (p * (1.0 - p)).sum()
    return float((p * below).sum() / pairs)


def explain(record: dict[str, Any], scores: Any, alert: float) -> None:
    """Add ``verdict.signals``, ``verdict.trigger`` and ``estimated_performance`` to ``record``
    from its own numbers. A signal fires at or above its threshold. On the retrain day every fired
    signal acts and data drift is the trigger; on a cooldown day the cooldown holds them; on
    other days prediction drift and the estimated drop are held as having no impact and the rest
    by the M-of-N window."""
    verdict, drift, perf = record["verdict"], record["drift"], record["performance"] or {}
    auc = expected_auc(scores)
    reference = record["reference_auc"]
    valid = record["partition"] != INVALID_ESTIMATE_DAY.isoformat()
    record["estimated_performance"] = {
        "auc": auc,
        "low": auc - ESTIMATE_HALF_WIDTH,
        "high": auc + ESTIMATE_HALF_WIDTH,
        "rows": len(scores),
        "reference_auc": reference,
        "valid": valid,
        "note": "" if valid else "realized AUC outside the estimate's interval: concept drift suspected",
    }
    drop = perf.get("drop") or {}
    measured = [
        ("data_drift", drift["score"], alert, "max judged feature PSI"),
        ("prediction_drift", drift["prediction"]["psi"], alert, "PSI of the model's scores"),
        ("estimated_drop", reference - auc, ESTIMATED_DROP_THRESHOLD, "training AUC minus the estimated AUC"),
    ]
    if drop:
        measured.append(("performance_drop", drop["drop"], 0.0, "training AUC minus realized AUC, interval above 0"))
    signals = []
    for kind, value, threshold, text in measured:
        fired = bool(drop["significant"]) if kind == "performance_drop" else value >= threshold
        held = None
        if fired and verdict["state"] != "retrain":
            if verdict.get("cooldown"):
                held = "cooldown"
            elif kind in ("prediction_drift", "estimated_drop"):
                held = "no_impact"
            else:
                held = "window"
        signals.append(
            {"kind": kind, "value": value, "threshold": threshold, "fired": fired, "held_by": held, "text": text}
        )
    verdict["signals"] = signals
    verdict["trigger"] = "data_drift" if verdict["state"] == "retrain" else None


def build_world(root: Path) -> World:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from include.datasets.ingest import land_day
    from include.lake import Lake, Zone
    from include.monitoring.decision import DayDrift, decide
    from include.monitoring.drift import build_reference, compute_drift
    from include.monitoring.monitor import DRIFT_KIND, loop_state, read_history, realized_performance, record_name
    from include.registry.ledger import LedgerEntry, append_entry
    from include.scoring.score import score_partition
    from include.spec import get_spec
    from include.training.onnx_export import build_pipeline, export_onnx, prepare_features

    spec = get_spec(MODEL)
    numeric, categorical = spec.dataset.features.numeric, spec.dataset.features.categorical
    key, target = spec.dataset.key_columns, spec.dataset.target.name
    lake = Lake((root / "lake").as_uri())
    # The world's drift days carry no harm: the policy opts into data-drift retraining so the
    # dashboard has a retrain day to show (the default retrains on measured or estimated harm only).
    policy = spec.drift.model_copy(update={"retrain_on": [*spec.drift.retrain_on, "data_drift"]})
    world = World(lake=lake)

    # Labels arrive label_delay_days late: landing up to day 11 brings labels up to day 9.
    for day in range(1, 12):
        land_day(spec, lake, date(2013, 1, day))
    for ds in [*TRAIN_DAYS, *SCORE_DAYS]:
        table = lake.read_table(Zone.LANDING, MODEL, ds)
        if ds == REJECT_DAY:
            distance = table.column("distance").to_pylist()
            for row in REJECT_ROWS:
                distance[row] = math.nan
            table = table.set_column(
                table.schema.get_field_index("distance"), "distance", pa.array(distance, pa.float64())
            )
        if ds in DRIFT_DAYS:
            index = table.schema.get_field_index("distance")
            table = table.set_column(index, "distance", pc.multiply(table.column("distance"), 3.0))
        lake.write_partition(Zone.VALIDATED, MODEL, ds, table)
        world.validated_rows[ds] = table.num_rows

    frames = []
    for ds in TRAIN_DAYS:
        features = lake.read_table(Zone.VALIDATED, MODEL, ds).to_pandas()
        frames.append(features.merge(lake.read_table(Zone.LABELS, MODEL, ds).to_pandas(), on=key))
    train = pd.concat(frames, ignore_index=True)
    x, y = prepare_features(train, numeric, categorical), train[target].to_numpy()
    pipeline = build_pipeline("logistic_regression", numeric, categorical, {}, 42).fit(x, y)
    onnx_bytes = export_onnx(pipeline, numeric, categorical)
    profile = build_reference(train, numeric, categorical, scores=pipeline.predict_proba(x)[:, 1], seed=0)
    reference_auc = 0.7123

    for when, action, version, previous, approver, reason, summary in LEDGER:
        entry = LedgerEntry(
            time=when,
            action=action,  # type: ignore[arg-type]
            model=MODEL,
            version=version,
            previous_version=previous,
            decision_id="" if action == "rollback" else f"d{version}{action}",
            summary=summary,
            approver=approver,
            reason=reason,
            dag_id=f"{MODEL}__{'rollback' if action == 'rollback' else 'promote'}",
            run_id=f"manual__{when:%Y-%m-%d}",
        )
        world.ledger_uris.append(append_entry(lake, entry))

    for ds in SCORE_DAYS:
        score_partition(
            spec,
            lake,
            ds,
            onnx_bytes,
            model_name=MODEL,
            model_version=VERSION_OF_DAY[ds],
            run_id=f"run-v{VERSION_OF_DAY[ds]}",
        )
        predictions = lake.read_table(Zone.PREDICTIONS, MODEL, ds).to_pandas()
        current = lake.read_table(Zone.VALIDATED, MODEL, ds).to_pandas()
        report = compute_drift(
            profile,
            current.merge(predictions[[*key, "score"]], on=key, how="left"),
            numeric,
            categorical,
            scores=predictions["score"].to_numpy(),
            spec_drift=spec.drift,
            threshold=spec.training.threshold,
            seed=spec.training.seed,
        )
        version = int(np.max(predictions["model_version"]))
        today = report.day(MODEL, ds.isoformat(), reference="v1")
        history_records = read_history(lake, MODEL, ds)
        history = [DayDrift.from_dict(r["day"]) for r in history_records]
        verdict = decide(history, today, loop_state(lake, MODEL, history_records), policy)
        record = {  # the shape monitor_day writes
            "model": MODEL,
            "partition": ds.isoformat(),
            "model_version": version,
            "day": today.to_dict(),
            "verdict": verdict.to_dict(),
            "drift": report.to_dict(),
            "performance": realized_performance(lake, spec, ds, reference_auc),
            "reference_auc": reference_auc,
            "report_uri": None,
            "rows_scored": len(predictions),
        }
        if ds == OLD_SHAPE_DAY:  # as written before the harm-aware monitor
            for name in ("signals", "trigger"):
                record["verdict"].pop(name, None)
        else:
            explain(record, predictions["score"].to_numpy(), spec.drift.alert)
        record["record_uri"] = lake.write_bytes(
            lake.report_path(MODEL, DRIFT_KIND, record_name(ds)), json.dumps(record, default=str).encode()
        )
        world.records[ds] = json.loads(json.dumps(record, default=str))
        world.reports[ds] = report
    return world


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections (the kernel completes the handshake for the
    listen backlog) and never answers a byte: a registry that hangs, not one that refuses."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.fixture(scope="session")
def dashboard_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """One world per session for the include and plugin dashboard tests, which only read it."""
    return build_world(tmp_path_factory.mktemp("dashboard"))
