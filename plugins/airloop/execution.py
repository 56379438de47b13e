"""AirloopBaseOperator: what every airloop operator shares, and where its step runs.

An operator names its step of the registry (``include.steps.STEPS``), builds that step's
parameters object from its arguments and the run context, and calls :meth:`AirloopBaseOperator.run_step`,
which runs the step in the worker (``local``: :func:`include.steps.run`) or in the project image
(``docker``: :func:`include.steps.step_command`, i.e. ``airloop step <name> --params <json>``)
and returns the step's JSON result, from which the operator sets asset events, links and
alerts (:meth:`AirloopBaseOperator.alert`) exactly as in local mode. The base also owns
``model``, the lake and MLflow connection ids and their hooks (``lake_hook``, ``mlflow_hook``).

Docker mode runs the command through the Docker provider's ``DockerOperator`` (imported only
when a docker step runs: parse time). What the container gets:

* ``Cmd``: ``airloop step <name> --params <the parameters as JSON>`` (no secret ever goes into
  the command line: parameters never hold one);
* ``Env``: ``AIRLOOP_LAKE_URI``, ``MLFLOW_TRACKING_URI`` (steps that use MLflow) and, for an
  ``s3://`` lake, the AWS connection's region/endpoint; its access key, secret key and session
  token go through ``private_environment`` (not templated, not rendered in the UI);
* ``mount_tmp_dir=False`` (remote and compose engines cannot bind-mount the worker's tmp),
  ``auto_remove="success"``, ``network_mode``. Every output line of the container is written to
  the task log (provider 4.6.1 removes the container in a ``finally``, even after a failure).

Settings (operator argument, else environment variable, else default):
``execution`` / ``AIRLOOP_EXECUTION`` / ``local``; ``image`` / ``AIRLOOP_IMAGE`` /
``airloop:0.1.0``; ``network_mode`` / ``AIRLOOP_DOCKER_NETWORK`` / ``bridge``; ``docker_url`` /
``AIRLOOP_DOCKER_URL`` or ``DOCKER_HOST`` / ``unix://var/run/docker.sock``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airloop.assets import AssetKind
    from airloop.hooks.lake import LakeHook
    from airloop.hooks.mlflow_hook import MlflowHook
    from include.alerts import Alert
    from include.step_lineage import StepLineage
    from include.steps import StepParams

EXECUTION_MODES = ("local", "docker")
DEFAULT_IMAGE = "airloop:0.1.0"  # what `docker build -t airloop:0.1.0 .` (Dockerfile) and compose tag
DEFAULT_NETWORK = "bridge"
# The image's own ENTRYPOINT (/entrypoint) turns every command into `airflow <command>` and waits
# for the Airflow database first; a step needs neither. dumb-init still forwards `docker stop`.
STEP_ENTRYPOINT = ["/usr/bin/dumb-init", "--"]


class ExecutionConfigError(ValueError):
    """An execution setting has a value airloop cannot use."""


class StepResultError(RuntimeError):
    """The step's container did not print a JSON result (its last JSON line on stdout)."""


def resolve_execution(value: str | None) -> str:
    """The explicit value, else ``AIRLOOP_EXECUTION``, else ``local``; refuses anything else."""
    mode = (value or os.environ.get("AIRLOOP_EXECUTION") or "local").strip().lower()
    if mode not in EXECUTION_MODES:
        raise ExecutionConfigError(f"execution={mode!r}: use one of {', '.join(EXECUTION_MODES)}")
    return mode


def parse_step_result(lines: Sequence[str | bytes] | str | None) -> dict[str, Any]:
    """The last line of the container output that is a JSON object.

    The CLI prints its result as one JSON line on stdout and logs to stderr; the Docker provider
    returns both streams interleaved (4.x reads the attach stream, 3.x re-read the logs), so a
    log line may follow the result: search from the end.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    for line in reversed(list(lines or [])):
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else str(line)).strip()
        if not (text.startswith("{") and text.endswith("}")):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise StepResultError("the step printed no JSON result (see the container output above)")


class AirloopBaseOperator(BaseOperator):
    """Base of the airloop operators: the model, its lake and MLflow server, and where the step runs.

    :param model: spec name.
    :param lake_uri: lake root (default ``AIRLOOP_LAKE_URI``).
    :param lake_conn_id: AWS connection of an ``s3://`` lake (default ``AIRLOOP_LAKE_CONN_ID`` or ``aws_default``).
    :param mlflow_conn_id: HTTP connection of the MLflow server (default ``mlflow_default``, then
        ``MLFLOW_TRACKING_URI``).
    :param execution: ``local`` (in the worker) or ``docker`` (``airloop step`` in ``image``);
        default ``AIRLOOP_EXECUTION`` or ``local``. Resolved at run time, not at parse time.
    :param image: image of docker mode (default ``AIRLOOP_IMAGE`` or ``airloop:0.1.0``).
    :param docker_url: Docker engine (default ``AIRLOOP_DOCKER_URL``, ``DOCKER_HOST``, local socket).
    :param network_mode: container network (default ``AIRLOOP_DOCKER_NETWORK`` or ``bridge``); the
        compose stack's network so the container reaches MLflow and MinIO by name.
    :param docker_conn_id: Airflow Docker connection (registry login) for pulling ``image``.
    :param docker_kwargs: further ``DockerOperator`` arguments (``mounts``, ``mem_limit``, ``user``,
        ``tls_*``...), e.g. a volume holding a ``file://`` lake at the same path.
    """

    template_fields: Sequence[str] = ()
    step: ClassVar[str] = ""  # the operator's step in include.steps.STEPS
    emits: ClassVar[AssetKind | None] = None  # the model asset the operator updates (its outlet), if any

    def __init__(
        self,
        *,
        model: str,
        lake_uri: str | None = None,
        lake_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        execution: str | None = None,
        image: str | None = None,
        docker_url: str | None = None,
        network_mode: str | None = None,
        docker_conn_id: str | None = None,
        docker_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.emits is not None:
            from airloop.assets import model_asset

            kwargs.setdefault("outlets", [model_asset(model, self.emits)])
        super().__init__(**kwargs)
        if execution is not None:
            resolve_execution(execution)  # a typo fails when the DAG is parsed, not at 3 am
        self.model = model
        self.lake_uri = lake_uri
        self.lake_conn_id = lake_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.execution = execution
        self.image = image
        self.docker_url = docker_url
        self.network_mode = network_mode
        self.docker_conn_id = docker_conn_id
        self.docker_kwargs = dict(docker_kwargs or {})
        self.report_links: dict[str, str] = {}
        # (step, parameters as JSON, result, tracking URI) of each step run: the task's lineage
        self._steps_run: list[tuple[str, dict[str, Any], dict[str, Any], str | None]] = []

    @cached_property
    def lake_hook(self) -> LakeHook:
        from airloop.hooks.lake import LakeHook

        return LakeHook(lake_uri=self.lake_uri, aws_conn_id=self.lake_conn_id)

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        from airloop.hooks.mlflow_hook import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def step_params(self, **values: Any) -> StepParams:
        """The operator's step parameters: ``spec`` (the model), each template field that is a
        field of the step's model (same name: a template field is a step parameter the DAG can
        template), then ``values`` (from the run context, or coerced)."""
        from include.steps import get_step

        model = get_step(self.step).params
        own = {name: getattr(self, name) for name in self.template_fields if name in model.model_fields}
        return model(**{"spec": self.model, **own, **values})

    def emit(self, context: Context, **extra: Any) -> None:
        """Set ``extra`` on the event of the asset the operator ``emits`` (emitted on success)."""
        from airloop.assets import model_asset

        assert self.emits is not None, f"{type(self).__name__} declares no asset it emits"
        context["outlet_events"][model_asset(self.model, self.emits)].extra = extra

    def alert(self, context: Context, *alerts: Alert | None) -> None:
        """Deliver each alert (``None``: nothing happened worth one) through
        :func:`airloop.notifiers.alerts.deliver`: logged, recorded in this operator's lake and sent
        to the spec's channels, rate-limited; the link defaults to the first report linked."""
        from airloop.notifiers.alerts import deliver

        link = next(iter(self.report_links.values()), None)
        for alert in alerts:
            if alert is not None:
                deliver(alert.with_context(link=link), context, lake=self.lake_hook.lake)

    def link_report(self, key: str, uri: str | None) -> None:
        """Record a link (see :mod:`airloop.links`) to a report the step wrote in the lake."""
        from airloop.links import report_url

        if uri:
            self.report_links[key] = report_url(self.lake_hook.lake.relative(uri.split("://", 1)[1]))

    # -- what the container needs -------------------------------------------------------------

    def step_environment(self, tracking_uri: str | None) -> tuple[dict[str, str], dict[str, str]]:
        """(environment, private_environment) for the container: URIs, then the secrets."""
        from include.lake import default_lake_uri

        env: dict[str, str] = {}
        private: dict[str, str] = {}
        lake_uri = self.lake_hook.lake_uri or default_lake_uri()
        env["AIRLOOP_LAKE_URI"] = lake_uri
        if lake_uri.startswith("s3://"):
            s3 = self.lake_hook.s3_options()
            env["AWS_DEFAULT_REGION"] = s3.region
            if s3.endpoint_url:
                env["AWS_ENDPOINT_URL_S3"] = s3.endpoint_url
            for name, value in (
                ("AWS_ACCESS_KEY_ID", s3.access_key),
                ("AWS_SECRET_ACCESS_KEY", s3.secret_key),
                ("AWS_SESSION_TOKEN", s3.session_token),
            ):
                if value:
                    private[name] = value
        if tracking_uri:
            env["MLFLOW_TRACKING_URI"] = tracking_uri
        return env, private

    def docker_operator(self, command: list[str], env: dict[str, str], private: dict[str, str]) -> BaseOperator:
        """The DockerOperator that runs ``command`` (already rendered: it is not templated again)."""
        from airflow.providers.docker.operators.docker import DockerOperator

        options: dict[str, Any] = {
            "entrypoint": list(STEP_ENTRYPOINT),
            "mount_tmp_dir": False,
            "auto_remove": "success",
            "xcom_all": True,
            "do_xcom_push": True,
            **self.docker_kwargs,
        }
        return DockerOperator(
            task_id=f"{self.task_id}__docker",
            image=self.image or os.environ.get("AIRLOOP_IMAGE") or DEFAULT_IMAGE,
            command=command,
            environment=env,
            private_environment=private,
            docker_url=self.docker_url or os.environ.get("AIRLOOP_DOCKER_URL") or None,
            network_mode=self.network_mode or os.environ.get("AIRLOOP_DOCKER_NETWORK") or DEFAULT_NETWORK,
            docker_conn_id=self.docker_conn_id,
            **options,
        )

    # -- running the step -------------------------------------------------------------------

    def run_step_or_skip(self, context: Context, params: StepParams) -> dict[str, Any]:
        """:meth:`run_step`; a result that says ``skipped`` (nothing to do, and why) skips the task."""
        result = self.run_step(context, params)
        if result.get("skipped"):
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(result["skipped"])
        return result

    def run_step(self, context: Context, params: StepParams, step: str | None = None) -> dict[str, Any]:
        """Run ``step`` (default: the operator's) with ``params`` here or in a container; its result."""
        from include.steps import get_step, run

        entry = get_step(step or self.step)
        tracking_uri = self.mlflow_hook.tracking_uri() if entry.needs_mlflow else None
        if resolve_execution(self.execution) == "local":
            result = run(entry.name, params, self.lake_hook.lake, tracking_uri)
        else:
            result = self._run_in_container(context, entry.name, params, tracking_uri)
        self._steps_run.append((entry.name, params.model_dump(mode="json"), result, tracking_uri))
        return result

    def _run_in_container(
        self, context: Context, step: str, params: StepParams, tracking_uri: str | None
    ) -> dict[str, Any]:
        from airflow.providers.docker.exceptions import DockerContainerFailedException

        from include.steps import step_command

        env, private = self.step_environment(tracking_uri)
        command = step_command(step, params)
        docker = self.docker_operator(command, env, private)
        self.log.info("running %s in the image %s", " ".join(command), docker.image)  # type: ignore[attr-defined]
        self._docker = docker  # for on_kill
        try:
            lines = docker.execute(context)
        except DockerContainerFailedException as exc:
            # A step that printed a result before exiting non-zero (a broken contract) still
            # reports it; anything else fails the task with the container's output.
            try:
                return parse_step_result(exc.logs)
            except StepResultError:
                raise exc from None
        return parse_step_result(lines)

    # -- lineage (Airflow's OpenLineage provider calls these when it has a transport) -------------

    def step_lineage(self) -> StepLineage:
        """What the steps this task ran read and wrote (:func:`include.step_lineage.step_lineage`)."""
        from include.spec import get_spec
        from include.step_lineage import StepLineage, step_lineage

        lineage = StepLineage()
        for step, params, result, tracking_uri in self._steps_run:
            lineage = lineage.merge(
                step_lineage(
                    step, params, result, spec=get_spec(self.model), lake=self.lake_hook.lake, tracking_uri=tracking_uri
                )
            )
        return lineage

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """:meth:`step_lineage` as OpenLineage datasets and facets (:mod:`airloop.lineage`)."""
        from airloop.lineage import operator_lineage

        return operator_lineage(self.step_lineage())

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """What the steps that finished before the failure read and wrote (a contract failure:
        the landing partition and the quarantine it was moved to)."""
        return self.get_openlineage_facets_on_complete(task_instance)

    def on_kill(self) -> None:
        docker = getattr(self, "_docker", None)
        if docker is not None:
            docker.on_kill()
