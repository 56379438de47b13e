"""The embedded development stack: Airflow 3 components + MLflow as local processes.

What runs a task lives in ``include/``; this package is what a developer runs around it:

* :mod:`devstack.stack`       configuration and control of one local stack (env, start, stop, health)
* :mod:`devstack.supervisor`  ``airloop up --watch``: restart components that exit
* :mod:`devstack.api`         a small client of Airflow's REST API v2
* :mod:`devstack.demo`        the demo driver: the loop through the REST API, as a user would
* :mod:`devstack.preflight`   refuse insecure settings before the compose stack starts
* :mod:`devstack.cli`         the ``airloop`` command: the library's step commands plus
                              ``up | down | status | demo | preflight | airflow``

Nothing here imports Airflow: components are started through the ``airflow`` / ``mlflow``
command-line interfaces as separate process groups, so the stack can be driven from a plain test
process or the CLI. ``include/`` never imports this package.
"""
