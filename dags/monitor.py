"""
### `<model>__monitor`: drift, realized performance, and the retrain decision

Daily and backfillable (like `__score`, whose predictions it waits for with a deferrable
trigger). Daily was chosen over the `predictions` asset because each run then owns exactly
one day, backfills replay history in order, and the decision engine's M-of-N windows see one
record per day.

* `monitor`: PSI over the reference's 10 equal-frequency bins and KS for numeric features,
  PSI over categories (unseen ones in their own bin) for categoricals, null-rate change,
  prediction drift (scores vs the holdout's), realized performance of the day whose labels
  arrived today with a bootstrap interval against the champion's reference AUC (the mean of its
  holdout days' AUCs: a labelled day is one day). The reference
  is the profile of the version that scored the day. Writes `reports/<model>/drift/ds=<date>.json`
  (the history) and an Evidently page (*Drift report* link). Alerts on warn, retrain and an
  open circuit breaker.
* `signal_retrain`: emits `<model>.drift` with `extra = {partition, decision_id, score,
  top_features, report_uri}` **only** on a `retrain` verdict (otherwise skipped). The verdict
  applies M-of-N windows (the latest must violate), a cooldown, a cap per period and a circuit
  breaker after consecutive rejected challengers, so the loop cannot storm.
"""

from __future__ import annotations

# Airflow's safe-mode parser only reads files that mention both "airflow" and "dag".
from airloop.dag_defaults import daily_dags
from airloop.operators.monitor import MonitorDriftOperator, SignalRetrainOperator

for spec, _dag in daily_dags(
    globals(), step="monitor", description="Monitor {model} drift and decide when to retrain", max_active_runs=1
):
    monitor = MonitorDriftOperator(task_id="monitor", model=spec.name, poke_interval=10.0)
    SignalRetrainOperator(task_id="signal_retrain", model=spec.name, summary=monitor.output)
