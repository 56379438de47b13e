"""Shapes several airloop operators share, on top of :class:`~airloop.execution.AirloopBaseOperator`.

* :class:`DayOperator`: a step of one day ``ds`` (templated).
* :class:`PartitionWaitOperator`: a day step that first waits, deferred (no worker slot held),
  for its input partition, and fails naming the partition and what to do when it never comes.
* :class:`SignalOperator`: turns an upstream task's result (``summary``, its ``.output``) into
  the model's asset event; runs no step.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airloop.execution import AirloopBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class DayOperator(AirloopBaseOperator):
    """A step of one day ``ds`` (templated; default the run's logical date)."""

    template_fields: tuple[str, ...] = ("ds",)

    def __init__(self, *, ds: str = "{{ ds }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ds = ds


class PartitionWaitOperator(DayOperator):
    """A day step that runs once ``wait_zone/<model>/ds=<ds>`` is in the lake.

    :meth:`execute` defers (:func:`airloop.triggers.lake.defer_until_partition`) until the
    partition arrives or ``wait_timeout`` passes, then :meth:`on_partition` does the work; on a
    timeout the task fails with ``wait_hint`` (formatted with ``model`` and ``ds``).

    :param poke_interval: seconds between checks while waiting.
    :param wait_timeout: how long to wait for the partition.
    """

    wait_zone: ClassVar[str] = ""  # an include.lake.Zone value
    wait_hint: ClassVar[str] = ""  # what to do when the partition never came

    def __init__(
        self, *, poke_interval: float = 30.0, wait_timeout: timedelta = timedelta(hours=12), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.poke_interval = poke_interval
        self.wait_timeout = wait_timeout

    def execute(self, context: Context) -> Any:
        from airloop.triggers.lake import defer_until_partition

        defer_until_partition(self, self.lake_hook.lake, self.wait_zone)
        return self.on_partition(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airloop.triggers.lake import fail_unless_arrived

        fail_unless_arrived(self, event, self.wait_zone, self.wait_hint.format(model=self.model, ds=self.ds))
        return self.on_partition(context)

    def on_partition(self, context: Context) -> Any:
        """The work once the partition is there."""
        raise NotImplementedError


class SignalOperator(AirloopBaseOperator):
    """Emit the asset event the operator ``emits`` from ``summary`` (an upstream task's
    ``.output``). It runs no step and always runs in the worker (``execution`` is accepted, like
    on every airloop operator, and has nothing to move).

    :param summary: the upstream task's result.
    """

    template_fields = ("summary",)

    def __init__(self, *, summary: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.summary = summary
