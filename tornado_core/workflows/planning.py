"""A workflow's next moves, decided from its steps alone: what finished, what may run, what is skipped."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tornado_core.ports.workflows import STEP_FINISHED, Step, StepChange, StepStatus, WorkflowStatus

_STOPPED = frozenset({StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED})


@dataclass(frozen=True)
class Plan:
    """One look at a workflow.

    Attributes:
        changes: Steps whose status moved (a finished job, a skip).
        ready: Waiting steps whose every earlier step succeeded: their jobs may be submitted.
    """

    changes: tuple[StepChange, ...]
    ready: tuple[Step, ...]


def plan(steps: tuple[Step, ...]) -> Plan:
    """Follow finished jobs, skip what a failure stops, and list the steps that may run now."""
    status: dict[str, StepStatus] = {}
    changes: list[StepChange] = []
    ready: list[Step] = []
    for step in steps:  # declaration order: every step after those it comes after
        now = step.current_status()
        if now is StepStatus.WAITING:
            earlier = [status[name] for name in step.after]
            if any(s in _STOPPED for s in earlier):
                now = StepStatus.SKIPPED
            elif all(s is StepStatus.SUCCEEDED for s in earlier):
                ready.append(step)
        if now is not step.status:
            error = step.error if now is StepStatus.FAILED else None
            changes.append(StepChange(name=step.name, status=now, job_id=step.job_id, error=error))
        status[step.name] = now
    return Plan(tuple(changes), tuple(ready))


def applied(steps: tuple[Step, ...], changes: tuple[StepChange, ...]) -> tuple[Step, ...]:
    """The steps with ``changes`` made."""
    by_name = {change.name: change for change in changes}
    return tuple(_changed(step, by_name[step.name]) if step.name in by_name else step for step in steps)


def outcome(steps: tuple[Step, ...]) -> tuple[WorkflowStatus, Step | None]:
    """The workflow's status after its steps (``running`` while any may still run), and the first
    failed step."""
    failed = next((s for s in steps if s.status is StepStatus.FAILED), None)
    if any(s.status not in STEP_FINISHED for s in steps):
        return WorkflowStatus.RUNNING, failed
    if all(s.status is StepStatus.SUCCEEDED for s in steps):
        return WorkflowStatus.SUCCEEDED, None
    return WorkflowStatus.FAILED, failed


def _changed(step: Step, change: StepChange) -> Step:
    return replace(
        step, status=change.status, job_id=change.job_id or step.job_id, error=change.error or step.error
    )
