"""Monitoring: drift of daily data and predictions, and what to do about it.

- :mod:`include.monitoring.drift`: PSI/KS/null-rate/prediction drift and realized performance
  against a reference profile (numpy, vectorized; the numbers decisions are made on).
- :mod:`include.monitoring.cbpe`: label-free estimate of a day's ROC AUC from its calibrated scores.
- :mod:`include.monitoring.decision`: the pure retrain policy (realized and estimated harm, M-of-N
  drift windows, cooldown and cap per trigger kind, circuit breaker) that turns a day's signals
  into a :class:`~include.monitoring.decision.DriftVerdict`.
- :mod:`include.monitoring.report`: Evidently's HTML drift report on a bounded sample, for people.

Nothing here imports Airflow; this package module itself imports nothing heavy.
"""

from __future__ import annotations
