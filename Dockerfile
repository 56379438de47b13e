# The airloop project image: Airflow 3.3.2 + the locked dependencies + dags/, plugins/, include/
# and devstack/ (the `airloop` entry point and the compose preflight; the image runs no dev stack).
# One image for every Airflow component, the `airloop <step>` CLI and the MLflow server of the
# compose stack (docs/deployment.md).
#
#   docker build --build-arg AIRLOOP_CODE_COMMIT="$(git rev-parse HEAD)" -t airloop:0.1.0 .
#
# Dependencies come from requirements/image.txt, exported from uv.lock (tests/deploy checks that it
# never drifts). Nothing is downloaded at build time except those packages (and hatchling, the
# build backend of our own package).
FROM apache/airflow:3.3.2-python3.11

# Must match the base image: installing it again with the requirements keeps pip from moving Airflow.
ARG AIRFLOW_VERSION=3.3.2
# Recorded as the code_commit tag of every training run; pass the git commit you build from.
ARG AIRLOOP_CODE_COMMIT=unknown

ENV MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRLOOP_CODE_COMMIT=${AIRLOOP_CODE_COMMIT} \
    AIRLOOP_HOME=/opt/airflow/state \
    PYTHONPATH=/opt/airflow

# The base image's `airflow` user (uid 50000, group 0 as Airflow's image docs recommend), never root.
USER 50000
WORKDIR /opt/airflow

# Dependencies first: this layer is rebuilt only when the lock changes, not when the code does.
COPY --chown=50000:0 requirements/image.txt /opt/airflow/requirements/image.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements/image.txt

# The code. PYTHONPATH=/opt/airflow makes /opt/airflow/include the one copy that runs, for the
# dag-processor, the workers and the CLI alike; installing the project (without dependencies)
# adds the `airloop` command, whose entry point is devstack/cli.py (it also holds the preflight).
COPY --chown=50000:0 pyproject.toml README.md /opt/airflow/
COPY --chown=50000:0 include/ /opt/airflow/include/
COPY --chown=50000:0 devstack/ /opt/airflow/devstack/
COPY --chown=50000:0 plugins/ /opt/airflow/plugins/
COPY --chown=50000:0 dags/ /opt/airflow/dags/
RUN pip install --no-cache-dir --no-deps /opt/airflow \
    && mkdir -p /opt/airflow/state /opt/airflow/auth \
    && airloop spec check
