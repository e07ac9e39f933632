"""Child jobs: a running job queues jobs for its tenant and waits for them (``ctx.children``).

A child is queued the way a submission is (validated payload, routed version, message sent,
then recorded ``queued``), with a job id derived from the parent's id and a key: a parent run
again after a crash finds its children instead of queueing them twice. Waiting polls the job
store; the parent's own heartbeat keeps its message hidden meanwhile, and its deadline bounds
the wait. Children run on the workers of their own task, so a parent never waits on its own slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from tornado_core.errors import BackendError, ChildJobFailed
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.producer.direct import DirectSubmitter
from tornado_core.services import Services

#: Seconds between two looks at the children's records.
POLL_SECONDS = 0.5
_ENDED_BADLY = frozenset({JobStatus.DEAD, JobStatus.FAILED})


class ChildJobs:
    """:class:`~tornado_core.ports.children.ChildJobsPort` for one running job.

    Args:
        services: The worker's services (queue, job store, registry).
        parent_job_id: The running job.
        tenant: Its tenant, whom the children belong to.
        check_deadline: Raises once the parent's attempt ran out of time.
        sleep: Waits between polls.
    """

    def __init__(
        self,
        services: Services,
        *,
        parent_job_id: str,
        tenant: str,
        check_deadline: Callable[[], None],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._services = services
        self._parent = parent_job_id
        self._tenant = tenant
        self._check_deadline = check_deadline
        self._sleep = sleep
        self._direct: DirectSubmitter | None = None  # built at the first child: most jobs have none

    def submit(self, task: str, payload: dict[str, Any], *, key: str) -> str:
        """Queue the child ``key`` of this job (once, whatever the number of attempts); its job id."""
        if self._direct is None:
            self._direct = DirectSubmitter(self._services)
        try:
            return self._direct.submit(
                task=task, tenant=self._tenant, payload=payload, key=f"child\0{self._parent}\0{key}",
                internal_ok=True,
            )  # fmt: skip
        except BackendError as exc:
            raise BackendError(f"could not queue child job {key} of {self._parent}: {exc}") from exc

    def wait(
        self, job_ids: Sequence[str], *, on_done: Callable[[int], None] | None = None
    ) -> list[JobRecord]:
        """Poll the job store until every child succeeded (see the port)."""
        done = 0
        while True:
            records = [self._services.jobs.get(job_id) for job_id in job_ids]
            for job_id, record in zip(job_ids, records, strict=True):
                if record is not None and record.status in _ENDED_BADLY:
                    raise ChildJobFailed(
                        f"child job {job_id} ({record.task}) is {record.status}: {record.error_message}"
                    )
            succeeded = [r for r in records if r is not None and r.status is JobStatus.SUCCEEDED]
            if len(succeeded) > done:
                done = len(succeeded)
                if on_done is not None:
                    on_done(done)
            if done == len(job_ids):
                return succeeded
            self._check_deadline()
            self._sleep(POLL_SECONDS)
