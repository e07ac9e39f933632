"""The error tree: every public error derives from :class:`TornadoError`.

Retry semantics travel on the exception a handler raises:

* :class:`Retry` asks for another attempt, optionally after ``delay`` seconds;
* :class:`NonRetryable` sends the job to the dead-letter queue at once;
* any other exception is retried with the task's backoff policy until its
  attempts run out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TornadoError(Exception):
    """Root of every error Tornado raises on purpose."""


class ConfigError(TornadoError):
    """Settings are missing or malformed."""


class TaskNotFound(TornadoError):
    """No task with that name is registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown task {name!r}")
        self.name = name


class TaskNotSubmittable(TornadoError):
    """The task is internal: only Tornado's own endpoints may queue it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"task {name!r} is internal and cannot be submitted directly")
        self.name = name


class VersionNotFound(TornadoError):
    """The task exists but not in the requested version."""

    def __init__(self, task: str, version: str) -> None:
        super().__init__(f"task {task!r} has no version {version!r}")
        self.task = task
        self.version = version


class PayloadInvalid(TornadoError):
    """A payload does not satisfy the task's schema.

    Attributes:
        errors: One entry per problem, each ``{"field": "a.b", "message": "..."}``.
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__(f"invalid payload: {summary}")
        self.errors = errors


class EnvelopeInvalid(TornadoError):
    """A queue message is not a Tornado envelope this version understands."""


class BackendError(TornadoError):
    """An infrastructure service (queue, store, database) failed."""


class QueueUnavailable(BackendError):
    """The queue could not be reached or refused the operation."""


class StoreUnavailable(BackendError):
    """The job store (PostgreSQL) could not be reached."""


class ObjectStoreError(BackendError):
    """The object store (S3) failed."""


class RuntimeFailure(BackendError):
    """A worker runtime (processes, Docker, ECS) could not start, find or stop workers."""


class ReleaseError(TornadoError):
    """A release operation is not allowed in the current state (nothing was changed)."""


class JobNotFound(TornadoError):
    """No job with that id is visible to the caller."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


class ScheduleInvalid(TornadoError):
    """A periodic schedule's definition is wrong (nothing was stored).

    Attributes:
        field: The offending field (``cron``, ``timezone``, ``name``...).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ScheduleExists(TornadoError):
    """A schedule of that name already exists for the tenant (nothing was changed)."""

    def __init__(self, tenant: str, name: str) -> None:
        super().__init__(f"tenant {tenant!r} already has a schedule named {name!r}")
        self.tenant = tenant
        self.name = name


class ScheduleNotFound(TornadoError):
    """The tenant has no schedule of that name."""

    def __init__(self, tenant: str, name: str) -> None:
        super().__init__(f"tenant {tenant!r} has no schedule named {name!r}")
        self.tenant = tenant
        self.name = name


class FilterInvalid(TornadoError):
    """A job filter of the console (a search, a bulk action) is refused; its text is the message alone.

    Attributes:
        field: The offending field, by its query-string name (``status``, ``from``, ``to``...).
        message: What is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class AuthError(TornadoError):
    """A bearer token is missing or unknown."""


class OperatorExists(TornadoError):
    """An operator account of that name already exists (nothing was changed)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"operator {name!r} already exists")
        self.name = name


class OperatorNotFound(TornadoError):
    """No operator account of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no operator {name!r}")
        self.name = name


class OperatorInvalid(TornadoError):
    """An operator account's name, role or password is refused (nothing was stored).

    Attributes:
        field: The offending field (``name``, ``role`` or ``password``).
        message: What is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApiError(TornadoError):
    """An error answer of the HTTP API: its status, machine code, message and offending fields.

    The API raises it to answer with an error; :class:`~tornado_core.client.TornadoClient`
    raises the same class when the API answered with one (``status`` 0: unreachable).

    Args:
        status: HTTP status code; 0 when the API could not be reached.
        code: Stable machine-readable code (``snake_case``).
        message: Human-readable explanation (never a traceback).
        fields: Field-level problems, each ``{"field": ..., "message": ...}``.
        headers: Extra response headers (``Retry-After``, ``WWW-Authenticate``...).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` document."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class TaskError(TornadoError):
    """Base for errors a task handler raises to steer its own retries."""


class Retry(TaskError):
    """Ask for another attempt.

    Args:
        message: Why the attempt failed.
        delay: Seconds to wait before the next attempt; ``None`` uses the
            task's backoff policy.
    """

    def __init__(self, message: str = "retry requested", *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class NonRetryable(TaskError):
    """The job can never succeed: dead-letter it at once."""


class JobTimeout(TaskError):
    """The handler ran past its task's timeout."""


class JobCancelled(TaskError):
    """The job's tenant cancelled it while it ran (raised at a progress report or a check).

    The worker records the job ``cancelled`` and drops its message: no retry, no dead letter.
    """


class ChildJobFailed(NonRetryable):
    """A child job the running job waited for ended dead or failed."""


class WorkflowInvalid(TornadoError):
    """A workflow's definition is wrong, refused whole (nothing was created).

    Attributes:
        problems: One entry per problem, each ``{"field": "steps[3].task", "message": "..."}``.
    """

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("invalid workflow: " + "; ".join(f"{p['field']}: {p['message']}" for p in problems))
        self.problems = problems


class WorkflowNotFound(TornadoError):
    """The tenant has no workflow of that id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r}")
        self.workflow_id = workflow_id


class StepInputMissing(TornadoError):
    """A step's payload refers to a result (or a field of one) that is not there."""
