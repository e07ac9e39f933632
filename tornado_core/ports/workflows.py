"""The workflows port: DAGs of steps, each step an ordinary job, kept with where they stand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

#: Most steps one workflow may have.
MAX_STEPS = 100

#: Job statuses after which a step's job will never succeed (an operator's redrive aside).
JOB_FAILED_STATUSES = frozenset({"dead", "failed"})


class WorkflowStatus(StrEnum):
    """Where a workflow is: ``running`` until every step succeeded (``succeeded``), one failed and
    nothing else can run (``failed``), or its tenant cancelled it (``cancelled``)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where a step is.

    ``waiting`` for the steps it comes after; ``queued`` its job was submitted (the job's own
    status says more); ``succeeded``; ``failed`` its job is dead or failed, or its input could not
    be built; ``skipped`` a step it comes after failed; ``cancelled`` the workflow was cancelled
    before the step finished.
    """

    WAITING = "waiting"
    QUEUED = "queued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


#: Step statuses a step never leaves.
STEP_FINISHED = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED})


@dataclass(frozen=True, kw_only=True)
class StepSpec:
    """One declared step: its task, its payload (with ``{"$result": ...}`` references) and the
    names of the steps it comes after."""

    name: str
    task: str
    payload: dict[str, Any]
    after: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NewWorkflow:
    """A validated workflow about to be stored.

    Attributes:
        workflow_id: Its id (``wf_`` and a time-ordered job id of its tenant).
        tenant: Whose it is.
        name: A label for people (may be empty).
        scope: The queue prefix of the deployment that runs it: only its advancers advance it.
        steps: In declaration order (a step comes after earlier ones only).
    """

    workflow_id: str
    tenant: str
    name: str
    scope: str
    steps: tuple[StepSpec, ...]


@dataclass(frozen=True, kw_only=True)
class Step:
    """A stored step, with its job's live status.

    Attributes:
        job_status: The status of its job in the job store (``None`` before it is submitted).
        error: Why it failed (its job's error, or its input's problem).
    """

    name: str
    task: str
    payload: dict[str, Any]
    after: tuple[str, ...]
    status: StepStatus
    job_id: str | None = None
    job_status: str | None = None
    error: str | None = None

    def current_status(self) -> StepStatus:
        """Its status as its job has it now: a ``queued`` step whose job finished follows the job."""
        if self.status is not StepStatus.QUEUED or self.job_status is None:
            return self.status
        if self.job_status == "succeeded":
            return StepStatus.SUCCEEDED
        if self.job_status in JOB_FAILED_STATUSES:
            return StepStatus.FAILED
        if self.job_status == "cancelled":
            return StepStatus.CANCELLED
        return StepStatus.QUEUED

    def to_json(self) -> dict[str, Any]:
        """The step as the API shows it."""
        return {
            "name": self.name, "task": self.task, "after": list(self.after),
            "status": self.current_status().value, "job_id": self.job_id, "job_status": self.job_status,
            "error": self.error,
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """A stored workflow and its steps, in declaration order."""

    workflow_id: str
    tenant: str
    name: str
    status: WorkflowStatus
    steps: tuple[Step, ...]
    created_at: datetime
    finished_at: datetime | None = None
    failed_step: str | None = None
    error: str | None = None

    def step(self, name: str) -> Step:
        """The step of that name (``KeyError`` if none)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The workflow as the API shows it: status, progress, failure, each step."""
        finished = sum(1 for s in self.steps if s.current_status() in STEP_FINISHED)
        failure = None
        if self.failed_step is not None:
            failure = {"step": self.failed_step, "error": self.error}
        return {
            "id": self.workflow_id, "name": self.name, "status": self.status.value,
            "progress": {"finished": finished, "steps": len(self.steps),
                         "fraction": round(finished / len(self.steps), 4) if self.steps else 1.0},
            "failure": failure, "steps": [s.to_json() for s in self.steps],
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StepChange:
    """A step's new status (and its job id, or its error)."""

    name: str
    status: StepStatus
    job_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class Advance:
    """What one pass over a workflow decided, applied in the transaction holding its lock.

    Attributes:
        steps: Changed steps.
        status: The workflow's new status, if it finished.
        failed_step: The step that failed it.
        error: That step's error.
    """

    steps: Sequence[StepChange] = field(default_factory=tuple)
    status: WorkflowStatus | None = None
    failed_step: str | None = None
    error: str | None = None


#: Decides a locked workflow's next moves (submitting the jobs of ready steps on the way).
AdvanceWorkflow = Callable[[Workflow], Advance]


class WorkflowStorePort(Protocol):
    """Where workflows and their steps are kept (the job store's database)."""

    def create(self, workflow: NewWorkflow) -> Workflow:
        """Store a workflow, ``running``, every step ``waiting``, in one commit."""
        ...

    def get(self, workflow_id: str, *, tenant: str | None = None) -> Workflow | None:
        """The workflow with its steps' live job statuses, or ``None`` (also for another tenant's)."""
        ...

    def list(
        self, tenant: str, *, status: WorkflowStatus | None = None, limit: int = 50, before: str | None = None
    ) -> list[Workflow]:
        """A tenant's workflows, newest first, ids below ``before``."""
        ...

    def advance(self, *, scope: str, limit: int, advance: AdvanceWorkflow, only: str | None = None) -> int:
        """Pass over ``running`` workflows of ``scope`` (or just ``only``), each in its own
        transaction under a row lock that other advancers skip; ``advance`` decides, its
        :class:`Advance` is applied before the commit. How many were passed over."""
        ...

    def cancel(
        self, workflow_id: str, *, tenant: str, cancel_jobs: Callable[[Sequence[str]], None]
    ) -> Workflow | None:
        """Cancel a running workflow under its lock: unfinished steps ``cancelled``, ``cancel_jobs``
        called with the jobs of its ``queued`` steps. The workflow as it is after (``None``: none)."""
        ...
