"""What a handler receives: its job's identity, service handles, logger and progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tornado_core.errors import ConfigError, JobCancelled, JobTimeout
from tornado_core.ports.children import ChildJobsPort
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.objects import ObjectStorePort

ProgressSink = Callable[[float, str | None], None]


@dataclass(kw_only=True)
class TaskContext:
    """Handed to every handler call.

    Attributes:
        job_id: The job's id; use it as the idempotency key of side effects.
        task: Task name.
        version: Task version running the job.
        tenant: Tenant that submitted the job.
        attempt: 1 on the first run, 2 on the first retry, ...
        s3: Object store (the deployment's bucket).
        rds: The ERP's PostgreSQL (RDS) database.
        redshift: The Redshift warehouse (a PostgreSQL database locally), if configured.
        logger: Logger whose records carry the job's identity.
        deadline: Monotonic time by which the attempt must finish.
        children_port: What :attr:`children` hands out (the worker sets it).
        cancel_requested: Whether the job's cancellation was requested (the worker's heartbeat
            sets what it reads).
    """

    job_id: str
    task: str
    version: str
    tenant: str
    attempt: int
    s3: ObjectStorePort
    rds: DatabasePort
    redshift: DatabasePort | None
    logger: logging.LoggerAdapter[logging.Logger]
    deadline: float
    _progress_sink: ProgressSink = field(repr=False)
    children_port: ChildJobsPort | None = field(default=None, repr=False)
    cancel_requested: Callable[[], bool] = field(default=lambda: False, repr=False)
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def progress(self, fraction: float, note: str | None = None) -> None:
        """Report progress between 0 and 1; also checks the deadline and a cancellation.

        Raises:
            JobTimeout: The attempt ran past the task's timeout.
            JobCancelled: The job's tenant cancelled it.
        """
        self.check_deadline()
        self.check_cancelled()
        self._progress_sink(min(max(fraction, 0.0), 1.0), note)

    @property
    def cancelled(self) -> bool:
        """Whether the job's cancellation was requested: stop soon (or call :meth:`check_cancelled`)."""
        return self.cancel_requested()

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the job's cancellation was requested.

        Call it between steps that are safe to stop after; the job ends ``cancelled``.
        """
        if self.cancel_requested():
            raise JobCancelled(f"{self.task} job {self.job_id} was cancelled")

    @property
    def children(self) -> ChildJobsPort:
        """Child jobs of this job: ``ctx.children.submit(...)`` then ``ctx.children.wait(ids)``.

        Raises:
            ConfigError: This context runs outside a worker (a unit-test harness without them).
        """
        if self.children_port is None:
            raise ConfigError(f"{self.task}: this context cannot queue child jobs (no worker behind it)")
        return self.children_port

    def check_deadline(self) -> None:
        """Raise :class:`JobTimeout` if the attempt ran past the task's timeout."""
        if self._clock() > self.deadline:
            raise JobTimeout(f"{self.task} ran past its timeout")

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - self._clock()


def job_logger(base: logging.Logger, **identity: Any) -> logging.LoggerAdapter[logging.Logger]:
    """A logger adapter that prefixes records with the job's identity."""
    return _JobLogger(base, identity)


class _JobLogger(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        tag = "[" + " ".join(f"{k}={v}" for k, v in extra.items()) + "] "
        # JSON log lines carry the identity as fields and leave the tag out of the message.
        kwargs.setdefault("extra", {}).update(extra, job_tag=tag)
        return f"{tag}{msg}", kwargs
