"""
Reports model specs that do not load, as this file's import error in the Airflow UI.

The DAG factories (one file per step) build DAGs only for specs that load, so a broken spec
cannot take other models' DAGs down; this module makes the broken ones impossible to miss:
the "DAG Import Errors" banner names the spec file, the field and what was expected.
It defines no DAG (the words airflow/dag here keep safe-mode parsing on).
"""

from __future__ import annotations

from include.spec import SpecError, load_specs

_good, _bad = load_specs()
if _bad:
    raise SpecError("; ".join(str(err) for err in _bad.values()))
