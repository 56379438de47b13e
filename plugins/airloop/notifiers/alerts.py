"""Deliver an alert: the log, the JSON record in the lake (always), and the spec's channels.

:func:`deliver` takes an :class:`include.alerts.Alert` (built by the operator that knows the
event, through :meth:`airloop.execution.AirloopBaseOperator.alert`) and the Airflow context:

1. logs it (ERROR for failures and breaches, WARNING otherwise) with its runbook link;
2. sends it to every channel of the model's ``alerts.channels`` that subscribes to its kind
   (:mod:`airloop.notifiers.channels`), unless the rate limit holds it (one message per model,
   kind and UTC day; repeats go into the next message's digest: :func:`include.alerts.rate_limit`);
   a channel that fails is logged (secrets masked) and recorded, and the task goes on: the lake
   record below is the channel that never fails silently;
3. writes ``reports/<model>/alerts/<dag>__<run>__<task>__<kind>.json`` atomically, keyed by run,
   task and kind so a rerun rewrites the same record: the alert, the runbook link and, per
   channel, its connection id, kind and status. No connection field (host, token, password) is
   ever in it.

:class:`AlertNotifier` is the DAGs' ``on_failure_callback``: a task that failed after its
retries (or a failed run) becomes a ``task_failure`` alert, unless the exception says the
operator alerted already (a contract violation: ``alerted = True``). :class:`ApprovalNeededNotifier`
is the promotion approval's HITL notifier.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from include.alerts import Alert
    from include.lake import Lake
    from include.spec import AlertsSpec

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
LOUD = frozenset({"contract_failure", "performance_breach", "fairness_breach", "breaker_open", "task_failure"})


def _ti_field(context: Any, name: str) -> Any:
    """``name`` (dag_id, run_id, task_id, try_number) of the task instance, else of the run, else
    the context's own entry."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    return getattr(ti, name, None) or getattr(dag_run, name, None) or context.get(name)


def task_link(context: Any) -> str | None:
    """The Airflow UI page of the task (``ti.log_url``), when the context has a task instance."""
    ti = context.get("ti") or context.get("task_instance")
    try:
        return str(ti.log_url) if ti is not None and getattr(ti, "dag_id", None) else None
    except Exception:  # noqa: BLE001 - a link is a nicety: no link rather than no alert
        return None


def occurrence(context: Any, alert: Alert) -> str:
    """What happened once: ``<dag>/<run>/<task>/<partition>`` (no try number: a rerun is the same)."""
    parts = [_ti_field(context, "dag_id"), _ti_field(context, "run_id"), _ti_field(context, "task_id")]
    return "/".join(str(p or "-") for p in (*parts, alert.partition))


def alerts_settings(model: str) -> AlertsSpec:
    """The model's ``alerts`` section; none (no channels) when its spec does not load: the alert
    is still logged and recorded."""
    from include.spec import AlertsSpec, SpecError, get_spec

    try:
        return get_spec(model).alerts
    except SpecError as exc:
        log.error("alerts of %s go to the log and the lake only: %s", model, exc)
        return AlertsSpec()


def record_name(context: Any, kind: str) -> str:
    """``<dag>__<run>__<task>__<kind>.json`` (``na`` for what the context lacks, e.g. the task of
    a DAG's own failure callback)."""
    dag, run, task = (str(_ti_field(context, name) or "na") for name in ("dag_id", "run_id", "task_id"))
    base = _UNSAFE.sub("_", f"{dag}__{run}")
    return f"{base[:100]}__{_UNSAFE.sub('_', task)[:60]}__{kind}.json"


def _send(alert: Alert, settings: AlertsSpec, lake: Lake, now: datetime, runbook: str) -> list[dict[str, Any]]:
    """Rate-limit ``alert`` and send it to its channels; one status per channel."""
    from airflow.sdk.log import redact

    from airloop.notifiers.channels import SENDERS
    from include.alerts import load_rate_state, rate_limit, save_rate_state

    wanted = [c for c in settings.channels if c.wants(alert.kind)]
    if not wanted:
        return []
    decision, state = rate_limit(load_rate_state(lake, alert.model), alert, now.date())
    statuses = []
    for channel in wanted:
        status = decision.outcome
        if decision.send:
            digest = [e for e in decision.digest if channel.wants(e.kind)]
            message = {
                "subject": alert.subject(),
                "text": alert.text(runbook, digest),
                "payload": alert.payload(runbook, digest),
            }
            try:
                SENDERS[channel.kind](channel, message)
                status = "sent"
            except Exception as exc:  # noqa: BLE001 - one broken channel must not silence the others
                status = f"failed: {redact(f'{type(exc).__name__}: {exc}')}"
                log.error("alert %s of %s not sent to %s (%s): %s", alert.kind, alert.model, channel.conn_id,
                          channel.kind, status)  # fmt: skip
        statuses.append({"conn_id": channel.conn_id, "kind": channel.kind, "status": status})
    if decision.outcome != "duplicate":
        save_rate_state(lake, alert.model, state)
    return statuses


def deliver(
    alert: Alert,
    context: Any,
    *,
    lake: Lake | None = None,
    settings: AlertsSpec | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Log, send (rate-limited) and record ``alert``; returns the lake record."""
    from include.alerts import runbook_link

    if lake is None:
        from airloop.hooks.lake import LakeHook

        lake = LakeHook().lake
    settings = settings or alerts_settings(alert.model)
    alert = alert.with_context(link=task_link(context), occurrence=occurrence(context, alert))
    runbook = runbook_link(settings.runbook_url, alert.kind)
    level = logging.ERROR if alert.kind in LOUD else logging.WARNING
    log.log(level, "airloop alert %s for %s: %s (runbook: %s)", alert.kind, alert.model, alert.headline, runbook)
    channels = _send(alert, settings, lake, now or datetime.now(UTC), runbook)
    record = {
        **alert.payload(runbook),
        "message": alert.headline,
        "dag_id": _ti_field(context, "dag_id"),
        "run_id": _ti_field(context, "run_id"),
        "task_id": _ti_field(context, "task_id"),
        "try_number": _ti_field(context, "try_number"),
        "channels": channels,
    }
    record.pop("text")
    lake.write_bytes(lake.report_path(alert.model, "alerts", record_name(context, alert.kind)),
                     json.dumps(record, indent=2).encode())  # fmt: skip
    return record


def failure_record(model: str, message: str, context: Any) -> dict[str, Any]:
    """What the failure callback knows: the task, the run, the exception."""
    exception = context.get("exception")
    return {
        "model": model,
        "dag_id": _ti_field(context, "dag_id"),
        "run_id": _ti_field(context, "run_id"),
        "task_id": _ti_field(context, "task_id"),
        "try_number": _ti_field(context, "try_number"),
        "logical_date": str(context.get("logical_date") or ""),
        "message": message + (f": {exception}" if exception else ""),
    }


class ApprovalNeededNotifier(BaseNotifier):
    """A notifier of :class:`~airloop.operators.promote.PromotionApprovalOperator` (HITL calls
    its ``notifiers`` once the request is in *Required actions*): the ``approval_needed`` alert
    with the gate report's figures (the task's ``report``), linking to the request (the task's
    page when ``api.base_url`` is not set)."""

    template_fields = ()

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model

    def notify(self, context: Any) -> None:
        from include.alerts import approval_needed

        task = context["task"]
        ti = context.get("ti") or context.get("task_instance")
        try:
            link: str | None = task.generate_link_to_ui(task_instance=ti)
        except (ValueError, AttributeError):
            link = None
        deliver(approval_needed(self.model, task.report, link), context)


class AlertNotifier(BaseNotifier):
    """``on_failure_callback`` of every airloop task and DAG: a ``task_failure`` alert
    (:func:`deliver`). Skipped when the exception is marked ``alerted`` (the operator sent its
    own, more precise alert already)."""

    template_fields = ("message",)

    def __init__(self, model: str, message: str = "") -> None:
        super().__init__()
        self.model = model
        self.message = message

    def notify(self, context: Any) -> None:
        from include.alerts import task_failure

        if getattr(context.get("exception"), "alerted", False):
            log.info("%s: the operator alerted already: no task_failure alert", self.model)
            return
        deliver(task_failure(self.model, failure_record(self.model, self.message, context)), context)
