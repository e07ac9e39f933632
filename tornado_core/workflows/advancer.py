"""The workflow advancer: submits the steps whose earlier steps succeeded, skips what a failure stops,
and finishes workflows; run by ``tornado scheduler`` (any number of them) and once by the API on creation.

Each workflow is advanced under a PostgreSQL row lock that other advancers skip. A step's job id
derives from the workflow's id and the step's name (its idempotency key), so an advancer killed
between submitting a job and committing leaves nothing the next one doubles: it finds the job.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado_core.errors import (
    PayloadInvalid,
    StepInputMissing,
    TaskNotFound,
    TaskNotSubmittable,
    VersionNotFound,
)
from tornado_core.ports.workflows import Advance, Step, StepChange, StepStatus, Workflow, WorkflowStorePort
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.services import Services
from tornado_core.workflows.planning import applied, outcome, plan
from tornado_core.workflows.references import find_references, substitute

_log = logging.getLogger(__name__)

#: Errors after which a step's job can never be queued: the step fails.
_HOPELESS = (TaskNotFound, TaskNotSubmittable, PayloadInvalid, VersionNotFound, StepInputMissing)


def step_key(workflow_id: str, step: str) -> str:
    """The idempotency key of a step's job, the same for every advancer, every time."""
    return f"workflow:{workflow_id}:{step}"


class WorkflowAdvancer:
    """Moves running workflows on.

    Args:
        services: The process's services (job store, object store for claim-checked results).
        store: Where workflows are kept.
        direct: Submits the steps' jobs (validation and routing as the API's).
        batch: Most workflows passed over per tick.
    """

    def __init__(
        self,
        services: Services,
        store: WorkflowStorePort,
        *,
        direct: DirectSubmitter | None = None,
        batch: int = 500,
    ) -> None:
        self._services = services
        self._store = store
        self._direct = direct or DirectSubmitter(services)
        self._scope = services.settings.queue_prefix
        self._batch = batch

    def tick(self) -> int:
        """One pass over the running workflows of this deployment; how many were passed over.

        Raises:
            BackendError: The store or the queue failed; what was committed stays.
        """
        return self._store.advance(scope=self._scope, limit=self._batch, advance=self.decide)

    def advance_one(self, workflow_id: str) -> bool:
        """Advance one workflow now (the API, right after creating it); ``False`` if another holds it."""
        return self._store.advance(scope=self._scope, limit=1, advance=self.decide, only=workflow_id) > 0

    def decide(self, workflow: Workflow) -> Advance:
        """Follow finished jobs, submit ready steps, skip stopped ones, until nothing more moves."""
        steps, changes = workflow.steps, dict[str, StepChange]()
        while True:
            found = plan(steps)
            submitted = tuple(self._submit(workflow, steps, step) for step in found.ready)
            moved = found.changes + submitted
            if not moved:
                break
            steps = applied(steps, moved)
            changes.update((change.name, change) for change in moved)
        status, failed = outcome(steps)
        if status is workflow.status:
            return Advance(steps=tuple(changes.values()))
        return Advance(
            steps=tuple(changes.values()),
            status=status,
            failed_step=failed.name if failed else None,
            error=failed.error if failed else None,
        )

    def _submit(self, workflow: Workflow, steps: tuple[Step, ...], step: Step) -> StepChange:
        """Queue a ready step's job (once, by its key); the step queued, or failed if it never can be."""
        try:
            payload = substitute(step.payload, self._results(steps, step))
            job_id = self._direct.submit(
                task=step.task,
                tenant=workflow.tenant,
                payload=payload,
                key=step_key(workflow.workflow_id, step.name),
                record_key=True,
            )
        except _HOPELESS as exc:
            _log.warning("workflow %s: step %s cannot run: %s", workflow.workflow_id, step.name, exc)
            return StepChange(name=step.name, status=StepStatus.FAILED, error=str(exc))
        return StepChange(name=step.name, status=StepStatus.QUEUED, job_id=job_id)

    def _results(self, steps: tuple[Step, ...], step: Step) -> dict[str, Any]:
        """The results of the steps ``step``'s payload refers to."""
        wanted = {str(ref.step) for ref in find_references(step.payload)}
        results: dict[str, Any] = {}
        for earlier in steps:
            if earlier.name in wanted and earlier.job_id is not None:
                record = self._services.jobs.get(earlier.job_id)
                if record is None:
                    continue
                if record.result is None and record.result_ref:
                    results[earlier.name] = json.loads(self._services.objects.get(record.result_ref))
                else:
                    results[earlier.name] = record.result
        return results
