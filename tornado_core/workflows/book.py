"""A tenant's workflows: submit one (checked whole, stored, its first steps queued), look, list, cancel."""

from __future__ import annotations

import logging
from typing import Any

from tornado_core.errors import BackendError, WorkflowNotFound
from tornado_core.ports.workflows import NewWorkflow, Workflow, WorkflowStatus, WorkflowStorePort
from tornado_core.producer.submission import Submitter
from tornado_core.services import Services
from tornado_core.workflows.advancer import WorkflowAdvancer
from tornado_core.workflows.definition import check_tasks, parse_workflow

_log = logging.getLogger(__name__)

#: The prefix of workflow ids (the rest is a time-ordered job id of the tenant).
ID_PREFIX = "wf_"


class WorkflowBook:
    """Workflows as their tenants see them.

    Args:
        services: The process's services (job ids, job store for cancellations).
        store: Where workflows are kept.
        submitter: Checks each step's task and payload as a submission (the API's routing).
        advancer: Queues a new workflow's first steps at once (else the next scheduler tick does).
    """

    def __init__(
        self, services: Services, store: WorkflowStorePort, submitter: Submitter, advancer: WorkflowAdvancer
    ) -> None:
        self._services = services
        self._store = store
        self._submitter = submitter
        self._advancer = advancer

    def submit(self, tenant: str, body: Any) -> Workflow:
        """Check a workflow whole, store it, and queue the steps that come after none.

        Raises:
            WorkflowInvalid: Naming every offending field; nothing was created.
            BackendError: The store failed; nothing was created.
        """
        definition = parse_workflow(body)
        check_tasks(definition, self._submitter, tenant)
        workflow_id = ID_PREFIX + self._services.job_ids.new(tenant)
        created = self._store.create(
            NewWorkflow(
                workflow_id=workflow_id, tenant=tenant, name=definition.name,
                scope=self._services.settings.queue_prefix, steps=definition.steps,
            )
        )  # fmt: skip
        try:
            self._advancer.advance_one(workflow_id)
        except BackendError as exc:  # stored: the schedulers' advancers take it from here
            _log.warning("workflow %s: first steps left to the scheduler: %s", workflow_id, exc)
            return created
        return self._store.get(workflow_id) or created

    def get(self, tenant: str, workflow_id: str) -> Workflow:
        """The tenant's workflow.

        Raises:
            WorkflowNotFound: None of that id for this tenant.
        """
        found = self._store.get(workflow_id, tenant=tenant) if self._issued(tenant, workflow_id) else None
        if found is None:
            raise WorkflowNotFound(workflow_id)
        return found

    def list(
        self, tenant: str, *, status: WorkflowStatus | None = None, limit: int = 50, before: str | None = None
    ) -> list[Workflow]:
        """The tenant's workflows, newest first."""
        return self._store.list(tenant, status=status, limit=limit, before=before)

    def cancel(self, tenant: str, workflow_id: str) -> Workflow:
        """Cancel a running workflow: waiting steps never run, running steps' jobs are asked to stop.

        Returns:
            The workflow after (a finished one unchanged).

        Raises:
            WorkflowNotFound: None of that id for this tenant.
        """
        jobs = self._services.jobs

        def cancel_jobs(job_ids: Any) -> None:
            for job_id in job_ids:
                jobs.request_cancel(job_id, tenant=tenant)

        found = (
            self._store.cancel(workflow_id, tenant=tenant, cancel_jobs=cancel_jobs)
            if self._issued(tenant, workflow_id)
            else None
        )
        if found is None:
            raise WorkflowNotFound(workflow_id)
        return found

    def _issued(self, tenant: str, workflow_id: str) -> bool:
        """Whether the id is one issued to ``tenant`` (no query for others)."""
        rest = workflow_id.removeprefix(ID_PREFIX)
        return rest != workflow_id and self._services.job_ids.belongs_to(rest, tenant)
