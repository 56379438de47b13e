"""Gated promotion: evaluate challenger and champion on the same fresh data, decide, move.

The evaluation set is the most recent ``gate.evaluation_days`` validated days, with labels in
the lake, that come after the challenger's last *training* day (its ``airloop.train_end``
tag): the challenger's holdout days plus any newer labelled days. Neither model trained on
them (the champion is older, so its training ended earlier still). Both models are scored
with onnxruntime from their registered ONNX files, so the gate judges what will serve.

A challenger trained because of a break (``airloop.break_day`` and ``airloop.trigger`` tags,
see :mod:`include.training.break_window`) is judged on those days that fall on or after the
break, when they hold at least ``gate.min_post_break_rows`` rows: days before the break measure
the concept that stopped holding. The champion's latest realized performance (the monitor's
records) tells the gate whether the champion is in a performance breach; the breach waives the
comparisons only for a challenger judged on those post-break days
(:func:`include.registry.gate.decide_promotion`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from include.lake import Lake, Zone
from include.names import (
    BREAK_TRIGGERS,
    CHALLENGER,
    CHAMPION,
    GATE_OUTCOMES,
    NO_DECISION_IN_TIME,
    GateAction,
    Tag,
)
from include.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from include.registry.gate import ChampionPerformance

log = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """Promotion cannot proceed (no challenger, no evaluation data); the message says why."""


@dataclass(frozen=True)
class EvaluationSet:
    frame: pd.DataFrame
    days: list[date]
    basis: Literal["holdout", "post_break"] = "holdout"
    note: str = ""  # which rows, and why, in words (recorded in the decision's summary)


def evaluation_set(spec: ModelSpec, lake: Lake, after: date | None, break_day: date | None = None) -> EvaluationSet:
    """Validated rows with labels of the last ``evaluation_days`` labelled days after ``after``;
    with a ``break_day``, of those on or after it when they hold ``gate.min_post_break_rows`` rows."""
    labelled = set(lake.list_partitions(Zone.LABELS, spec.name))
    candidates = [
        d for d in lake.list_partitions(Zone.VALIDATED, spec.name) if d in labelled and (after is None or d > after)
    ]
    days = candidates[-spec.gate.evaluation_days :]
    if not days:
        raise PromotionError(
            f"{spec.name}: no validated day with labels after {after}: nothing to evaluate the challenger on yet"
        )
    if break_day is None:
        return EvaluationSet(_labelled_rows(spec, lake, days), days)
    minimum = spec.gate.min_post_break_rows
    post = [d for d in candidates if d >= break_day][-spec.gate.evaluation_days :]
    frame = _labelled_rows(spec, lake, post) if post else None
    rows = 0 if frame is None else len(frame)
    since = f"{len(post)} labelled days after the break on {break_day} ({rows:,} rows)"
    if frame is not None and rows >= minimum:
        note = f"judged on the {since}, >= gate.min_post_break_rows {minimum:,}"
        return EvaluationSet(frame, post, "post_break", note)
    frame = _labelled_rows(spec, lake, days)
    note = (
        f"judged on the usual evaluation days {days[0]}..{days[-1]} ({len(frame):,} rows): only {since}, "
        f"< gate.min_post_break_rows {minimum:,}"
    )
    return EvaluationSet(frame, days, "holdout", note)


def _labelled_rows(spec: ModelSpec, lake: Lake, days: list[date]) -> pd.DataFrame:
    """Validated rows of ``days`` joined with their labels (inner join on the key columns)."""
    import pandas as pd

    keys = spec.dataset.key_columns
    frames = []
    for day in days:
        features = lake.read_table(Zone.VALIDATED, spec.name, day).to_pandas()
        labels = lake.read_table(Zone.LABELS, spec.name, day).to_pandas().drop_duplicates(keys)
        frames.append(features.merge(labels, on=keys, how="inner", validate="one_to_one"))
    return pd.concat(frames, ignore_index=True)


def champion_performance(lake: Lake, model: str, champion: int) -> ChampionPerformance | None:
    """The champion's latest realized performance: the newest monitor record whose labelled day
    the champion scored (``performance.model_version``) and that has a ROC AUC; ``None`` if none."""
    from include.records import read_history
    from include.registry.gate import ChampionPerformance

    for record in reversed(read_history(lake, model, date.max)):
        performance = record.get("performance") or {}
        if performance.get("model_version") != champion or performance.get("roc_auc") is None:
            continue
        upper = (performance.get("drop") or {}).get("ci_high")
        return ChampionPerformance(
            version=champion,
            label_day=str(performance["label_day"]),
            roc_auc=float(performance["roc_auc"]),
            roc_auc_upper=None if upper is None else float(upper),
            rows=int(performance.get("rows") or 0),
        )
    return None


def break_of(tags: dict[str, str]) -> date | None:
    """The break a challenger was trained to answer (its ``airloop.break_day`` tag, set only with a
    performance trigger), or ``None``."""

    if tags.get(Tag.TRIGGER) not in BREAK_TRIGGERS or not tags.get(Tag.BREAK_DAY):
        return None
    return date.fromisoformat(tags[Tag.BREAK_DAY])


def onnx_scores(onnx_bytes: bytes, frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Positive-class probabilities from an onnxruntime session (one input per feature)."""
    import onnxruntime as ort

    from include.model_io import onnx_inputs

    features = spec.dataset.features
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(["probabilities"], onnx_inputs(frame, features.numeric, features.categorical))
    return outputs[0][:, 1].astype("float64")


def _client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri, registry_uri=tracking_uri)


def _tags(client: MlflowClient, name: str, version: int) -> dict[str, str]:
    return dict(client.get_model_version(name, str(version)).tags)


def _parity(tags: dict[str, str]) -> dict[str, float]:
    return {k.removeprefix("parity."): float(v) for k, v in tags.items() if k.startswith("parity.")}


def run_gate(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    *,
    mode_override: str | None = None,
    challenger_version: int | None = None,
    shadow_clean_days: int | None = None,
    report_key: str,
) -> dict[str, Any]:
    """Evaluate challenger vs champion, decide with the spec's gate policy, write the gate report.

    Returns a JSON-able dict (for XCom): decision, versions, evaluation days, report URIs.
    """
    from include.registry.aliases import current_alias
    from include.registry.gate import compare, decide_promotion, evaluate
    from include.registry.mlflow_registry import load_onnx_bytes
    from include.reports.format import jsonable

    client = _client(tracking_uri)
    challenger = challenger_version or current_alias(client, spec.name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"{spec.name}: no version has alias {CHALLENGER!r}: train one first")
    champion = current_alias(client, spec.name, CHAMPION)
    if champion == challenger:
        raise PromotionError(f"{spec.name}: version {challenger} is already the champion")
    tags = _tags(client, spec.name, challenger)
    train_end = date.fromisoformat(tags[Tag.TRAIN_END]) if tags.get(Tag.TRAIN_END) else None
    evalset = evaluation_set(spec, lake, train_end, break_of(tags))
    labels = evalset.frame[spec.dataset.target.name].to_numpy()
    slices = {c: evalset.frame[c].astype(str).to_numpy() for c in spec.dataset.slice_columns}
    gate = spec.gate
    seed = spec.training.seed
    threshold = spec.training.threshold
    challenger_scores = onnx_scores(load_onnx_bytes(tracking_uri, spec.name, challenger), evalset.frame, spec)
    challenger_eval = evaluate(challenger_scores, labels, slices, threshold, gate.bootstrap_samples, seed)
    champion_eval = comparison = None
    champion_scores: np.ndarray | None = None
    if champion is not None:
        champion_scores = onnx_scores(load_onnx_bytes(tracking_uri, spec.name, champion), evalset.frame, spec)
        champion_eval = evaluate(champion_scores, labels, slices, threshold, gate.bootstrap_samples, seed)
        comparison = compare(
            challenger_eval, champion_eval, challenger_scores, champion_scores, labels, gate.bootstrap_samples, seed
        )
    fairness = None
    if gate.fairness is not None:
        from include.registry.fairness import measure_fairness

        fairness = measure_fairness(
            gate.fairness,
            {c: evalset.frame[c].astype(str).to_numpy() for c in gate.fairness.sensitive},
            labels,
            challenger_scores,
            champion_scores,
            threshold,
            gate.bootstrap_samples,
            seed,
        )
    if shadow_clean_days is None and gate.shadow_days > 0 and champion is not None:
        from include.scoring.shadow import clean_shadow_days

        shadow_clean_days = clean_shadow_days(lake, spec.name, challenger)
    decision = decide_promotion(
        gate,
        challenger_eval,
        champion_eval,
        comparison,
        _parity(tags),
        shadow_clean_days,
        mode_override=mode_override,
        context={
            "model": spec.name,
            "challenger": challenger,
            "champion": champion,
            "days": [str(d) for d in evalset.days],
        },
        realized=champion_performance(lake, spec.name, champion) if champion is not None else None,
        breach_floor=spec.drift.breach_floor,
        evaluated_on=evalset.note or None,
        basis=evalset.basis,
        answers_break=break_of(tags) is not None,
        fairness=fairness,
    )
    log.info("%s gate: %s", spec.name, decision.summary)
    report = {
        "model": spec.name,
        "challenger_version": challenger,
        "champion_version": champion,
        "evaluation_days": [d.isoformat() for d in evalset.days],
        "evaluation_rows": len(evalset.frame),
        "evaluation_basis": evalset.basis,
        "decision": decision.to_dict(),
        "challenger": challenger_eval.to_dict(),
        "champion": champion_eval.to_dict() if champion_eval else None,
        "comparison": comparison.to_dict() if comparison else None,
        "fairness": fairness.to_dict() if fairness else None,
        "challenger_tags": tags,
    }
    report = jsonable(report)
    json_path = lake.report_path(spec.name, "gate", f"{decision.decision_id}.json")
    html_path = lake.report_path(spec.name, "gate", f"{decision.decision_id}.html")
    report["report_json_uri"] = lake.write_bytes(json_path, json.dumps(report, indent=2).encode())
    report["report_html_uri"] = lake.write_bytes(html_path, gate_report_html(report).encode())
    return dict(report)


def gate_report_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the gate decision: every check, threshold and observed value
    (the report kit's ``gate.html``)."""
    from include.reports.render import render

    decision = report["decision"]
    if decision["promote"]:
        verdict, verdict_class = "PROMOTE", "promote"
    elif decision.get("would_promote"):
        verdict, verdict_class = "WOULD PROMOTE (dry run)", "dry_run"
    elif decision.get("pending"):
        waiting = "post-break labels" if decision.get("waiting_for") == "post_break_rows" else "clean shadow days"
        verdict, verdict_class = f"PENDING (waiting for {waiting})", "pending"
    else:
        verdict, verdict_class = "REJECT", "reject"
    return render(
        "gate.html",
        title=f"Gate {report['model']} v{report['challenger_version']}",
        model=report["model"],
        challenger_version=report["challenger_version"],
        champion_version=report["champion_version"],
        evaluation_rows=report["evaluation_rows"],
        evaluation_days=report["evaluation_days"],
        evaluation_basis=report.get("evaluation_basis", "holdout"),
        decision=decision,
        verdict=verdict,
        verdict_class=verdict_class,
        fairness=report.get("fairness"),
    )


def apply_decision(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    gate_report: dict[str, Any],
    *,
    approval: dict[str, Any] | None,
    now: datetime,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Act on a gate report: CAS-move ``@champion``, tag both versions, write the model card and
    the ledger entry; or record why nothing moved. Returns what happened (JSON-able).

    ``approval`` is the approval task's result when the spec requires one: a human's answer
    (``chosen_options``, ``responded_by_user``, ``params_input.comment``), or one the approval task
    gave itself (``ended``: ``timeout``, recorded as ``approval_rejected`` with the reason
    :data:`~include.names.NO_DECISION_IN_TIME`; ``superseded``). A decision that waited for a human
    may be stale: when ``@challenger`` no longer names the gated version, whatever the answer, it
    is recorded as ``superseded`` ("superseded by vN") and nothing moves."""
    from include.registry.aliases import current_alias, move_alias_cas, tag_version
    from include.registry.ledger import LedgerEntry, append_entry

    client = _client(tracking_uri)
    decision = gate_report["decision"]
    challenger, champion = gate_report["challenger_version"], gate_report["champion_version"]
    approved, approver, reason, ended = _answer(approval)
    base = {
        "time": now,
        "model": spec.name,
        "version": challenger,
        "previous_version": champion,
        "decision_id": decision["decision_id"],
        "summary": decision["summary"],
        "figures": {
            "challenger": gate_report["challenger"],
            "comparison": gate_report["comparison"],
            # which circuit breaker a rejection counts toward (monitor.rejected_budget)
            "trigger": (gate_report.get("challenger_tags") or {}).get(Tag.TRIGGER),
            # what a pending challenger waits for (only shadow days re-gate it: see regate_due)
            "waiting_for": decision.get("waiting_for"),
            # an approval nobody answered: "timeout"; one a newer challenger ended: "superseded"
            "approval": ended,
        },
        "approver": approver,
        "reason": reason,
        "dag_id": dag_id,
        "run_id": run_id,
    }

    def not_moved(action: GateAction, tags: dict[str, str]) -> dict[str, Any]:
        append_entry(lake, LedgerEntry(action=action, **base))
        tag_version(client, spec.name, challenger, {Tag.GATE: action, **tags})
        return {
            "promoted": False,
            "action": action,
            "version": challenger,
            "champion": champion,
            "approval": ended,  # "timeout": nobody answered in time
        }

    decided = {Tag.GATE_DECISION_ID: decision["decision_id"]}
    if not decision["promote"]:
        return not_moved(_not_promoted_action(decision), decided)
    newer = superseded_by(challenger, current_alias(client, spec.name, CHALLENGER)) if approval is not None else None
    if newer is not None:
        base["reason"] = f"superseded by v{newer}"
        return not_moved("superseded", {**decided, Tag.SUPERSEDED_BY: str(newer)})
    if not approved:
        return not_moved("approval_rejected", {Tag.REJECTED_BY: approver or "", Tag.REJECT_REASON: reason or ""})

    move_alias_cas(client, spec.name, CHAMPION, challenger, expected_current=champion)
    when = now.isoformat()
    tag_version(
        client,
        spec.name,
        challenger,
        {
            Tag.GATE: "promoted",
            Tag.GATE_DECISION_ID: decision["decision_id"],
            Tag.PROMOTED_AT: when,
            Tag.PROMOTED_BY_DAG_RUN: f"{dag_id}/{run_id}",
            Tag.PREVIOUS_CHAMPION: str(champion or ""),
            Tag.APPROVED_BY: approver or ("not required" if approval is None else ""),
            Tag.GATE_REPORT: gate_report.get("report_json_uri", ""),
            Tag.EVALUATION_DAYS: ",".join(gate_report["evaluation_days"]),
            Tag.GAIN_VS_CHAMPION: str((gate_report.get("comparison") or {}).get("gain", "")),
        },
    )
    if champion is not None:
        tag_version(client, spec.name, champion, {Tag.DEMOTED_AT: when, Tag.REPLACED_BY: str(challenger)})
    card_uri = write_model_card(spec, lake, client, gate_report, approver=approver)
    append_entry(lake, LedgerEntry(action="promote", **base))
    return {"promoted": True, "action": "promote", "version": challenger, "champion": champion, "model_card": card_uri}


def superseded_by(version: int, current_challenger: int | None) -> int | None:
    """The newer challenger that supersedes ``version`` (``@challenger`` names another version),
    else ``None``."""
    return current_challenger if current_challenger is not None and current_challenger != version else None


def unanswered_approval(
    version: int, current_challenger: int | None, deadline: datetime | None, now: datetime
) -> Literal["superseded", "timeout"] | None:
    """Why an approval request nobody answered ends now: ``superseded`` (``@challenger`` names a
    newer version) or ``timeout`` (``now`` is past the ``deadline``, ``gate.approval_timeout``
    after the request; ``None``: no deadline); ``None``: it keeps waiting. A newer challenger wins
    over the deadline (the more telling reason)."""
    if superseded_by(version, current_challenger) is not None:
        return "superseded"
    return "timeout" if deadline is not None and now >= deadline else None


def _answer(approval: dict[str, Any] | None) -> tuple[bool, str | None, str | None, str | None]:
    """``(approved, approver, reason, ended)`` of the approval task's result (``None``: no
    approval required, so approved); ``ended``: how an approval ended without a human
    (``timeout``, then not approved, with the reason :data:`~include.names.NO_DECISION_IN_TIME`;
    or ``superseded``)."""
    if approval is None:
        return True, None, None, None
    approver = _user(approval.get("responded_by_user"))
    reason = str((approval.get("params_input") or {}).get("comment") or "")
    ended = approval.get("ended")
    if ended == "timeout":
        return False, approver, NO_DECISION_IN_TIME, ended
    return "Approve" in (approval.get("chosen_options") or []), approver, reason, ended


def _not_promoted_action(decision: dict[str, Any]) -> Literal["dry_run", "pending", "reject"]:
    """``pending`` (waiting for shadow days or post-break labels) is recorded as such: it is no
    rejection, so it never counts toward the circuit breaker, which counts ``reject`` entries."""
    if decision.get("mode") == "dry_run":
        return "dry_run"
    return "pending" if decision.get("pending") else "reject"


def regate_due(spec: ModelSpec, lake: Lake, version: int) -> bool:
    """True when ``version``'s latest gate entry in the ledger is ``pending`` for want of clean
    shadow days and they now reach ``gate.shadow_days``: the promote DAG should gate it again. A
    challenger pending for post-break labels is not re-gated here: the monitor's next breach day
    retrains with those labels, and the new challenger supersedes it."""
    from include.registry.ledger import last_entry, read_ledger
    from include.scoring.shadow import clean_shadow_days

    mine = [e for e in read_ledger(lake, spec.name) if e.get("version") == version]
    latest = last_entry(mine, GATE_OUTCOMES)
    if latest is None or latest["action"] != "pending":
        return False
    if (latest.get("figures") or {}).get("waiting_for") == "post_break_rows":
        return False
    return clean_shadow_days(lake, spec.name, version) >= spec.gate.shadow_days


def _user(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("id") or "") or None
    return None if value is None else str(value)


def write_model_card(
    spec: ModelSpec, lake: Lake, client: MlflowClient, gate_report: dict[str, Any], approver: str | None
) -> str:
    """Model card as Markdown and HTML under ``reports/<model>/cards/`` and on the version's run;
    its explanations come from the challenger's and the champion's training runs."""
    import tempfile
    from pathlib import Path

    from include.registry.card import model_card_html, model_card_markdown
    from include.registry.explain import importance_shift, run_explanations, write_importance_record

    tags = gate_report["challenger_tags"]
    explained = run_explanations(client, tags.get(Tag.TRAINING_RUN_ID))
    champion_version = gate_report.get("champion_version")
    champion_run = None
    if champion_version:
        from mlflow.exceptions import MlflowException

        try:  # the card is written after the alias moved: a missing champion version costs only its importance
            champion_run = _tags(client, spec.name, champion_version).get(Tag.TRAINING_RUN_ID)
        except MlflowException as exc:
            log.warning(
                "%s: no training run for champion v%s (%s): card without its importance",
                spec.name,
                champion_version,
                exc,
            )
    window = tuple(tags.get(Tag.DATA_WINDOW, "?..?").split(".."))
    version = gate_report["challenger_version"]
    champion_importance = run_explanations(client, champion_run)["importance"]
    inputs: dict[str, Any] = {
        "model": spec.name,
        "version": version,
        "description": spec.description,
        "training_window": (window[0], window[-1]),
        "evaluation": gate_report["challenger"],
        "decision": gate_report["decision"],
        "champion": gate_report["champion"],
        "comparison": gate_report["comparison"],
        "fairness": gate_report.get("fairness"),
        "importance": explained["importance"],
        "champion_importance": champion_importance,
        "calibration": explained["calibration"],
        "estimator": tags.get(Tag.ESTIMATOR),
        "label_delay_days": spec.dataset.label_delay_days,
        "owner": spec.owner,
        "lineage": {
            "training run": tags.get(Tag.TRAINING_RUN_ID),
            "data hash": tags.get(Tag.DATA_HASH),
            "code commit": tags.get(Tag.CODE_COMMIT),
            "dag run": f"{tags.get(Tag.DAG_ID)}/{tags.get(Tag.DAG_RUN_ID)}",
            "approved by": approver or "no approval required",
            "evaluated on": ", ".join(gate_report["evaluation_days"]),
        },
    }
    markdown = model_card_markdown(**inputs)
    html = model_card_html(**inputs)
    lake.write_bytes(lake.report_path(spec.name, "cards", f"v{version}.md"), markdown.encode())
    uri = lake.write_bytes(lake.report_path(spec.name, "cards", f"v{version}.html"), html.encode())
    if explained["importance"]:
        shifts = importance_shift(explained["importance"], champion_importance)
        write_importance_record(lake, spec.name, version, champion_version if champion_importance else None, shifts)
    run_id = tags.get(Tag.TRAINING_RUN_ID)
    if run_id:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in (("model_card.md", markdown), ("model_card.html", html)):
                (Path(tmp) / name).write_text(text)
                client.log_artifact(run_id, str(Path(tmp) / name), artifact_path="model_card")
    return uri


def rollback(
    spec: ModelSpec,
    lake: Lake,
    tracking_uri: str,
    *,
    target_version: int | None,
    reason: str,
    now: datetime,
    dag_id: str,
    run_id: str,
) -> dict[str, Any]:
    """Move ``@champion`` back (default: to the champion the current one replaced), CAS-safe."""
    from include.registry.aliases import current_alias, move_alias_cas, tag_version
    from include.registry.ledger import LedgerEntry, append_entry, read_ledger

    if not reason.strip():
        raise PromotionError(f"{spec.name}: a rollback needs a reason")
    client = _client(tracking_uri)
    current = current_alias(client, spec.name, CHAMPION)
    if current is None:
        raise PromotionError(f"{spec.name}: there is no champion to roll back")
    if target_version is None:
        promotions = [e for e in read_ledger(lake, spec.name) if e["action"] == "promote" and e["version"] == current]
        previous = promotions[-1]["previous_version"] if promotions else None
        if previous is None:
            raise PromotionError(f"{spec.name}: v{current} replaced no earlier champion; name a target version")
        target_version = int(previous)
    if target_version == current:
        raise PromotionError(f"{spec.name}: v{target_version} is already the champion")
    client.get_model_version(spec.name, str(target_version))  # fails clearly if it does not exist
    move_alias_cas(client, spec.name, CHAMPION, target_version, expected_current=current)
    when = now.isoformat()
    tag_version(client, spec.name, target_version, {Tag.RESTORED_AT: when, Tag.RESTORE_REASON: reason})
    tag_version(client, spec.name, current, {Tag.ROLLED_BACK_AT: when, Tag.ROLLBACK_REASON: reason})
    append_entry(
        lake,
        LedgerEntry(
            time=now,
            action="rollback",
            model=spec.name,
            version=target_version,
            previous_version=current,
            summary=f"rollback from v{current} to v{target_version}: {reason}",
            reason=reason,
            dag_id=dag_id,
            run_id=run_id,
        ),
    )
    return {"version": target_version, "previous_version": current, "reason": reason}
