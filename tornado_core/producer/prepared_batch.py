"""A batch of ordinary jobs prepared together, kept as columns per queue rather than a job at a time.

:meth:`~tornado_core.producer.submission.Submitter.prepare_many` makes one; the API sends each
group with one call and answers each job from its columns. The bodies are byte for byte what
:meth:`~tornado_core.producer.submission.Submitter.prepare` would write, without an envelope
object per job.
"""

from __future__ import annotations

from typing import NamedTuple

from tornado_core.ports.jobs import NewJob


class QueueGroup(NamedTuple):
    """The jobs of a batch that go to one queue (one task version), in the order they came.

    Attributes:
        queue: The (task, version) queue's name.
        task: Their task.
        version: The version they were routed to.
        positions: Each job's index in the batch.
        job_ids: Each job's id.
        bodies: Each job's message body (its envelope as JSON).
        keys: Each job's idempotency key, or ``None``.
    """

    queue: str
    task: str
    version: str
    positions: list[int]
    job_ids: list[str]
    bodies: list[str]
    keys: list[str | None]

    def messages(self, tenant: str, submitted_at: float) -> list[tuple[str, NewJob]]:
        """``(body, queued row)`` of each job, as the send batcher takes them."""
        task, version = self.task, self.version
        return [
            (body, NewJob(job_id, tenant, task, version, submitted_at, key))  # by position: NewJob's order
            for body, job_id, key in zip(self.bodies, self.job_ids, self.keys, strict=True)
        ]


class PreparedBatch(NamedTuple):
    """A batch of ordinary jobs, validated and serialised, grouped by queue.

    Attributes:
        tenant: The submitting tenant.
        submitted_at: When the batch was accepted (epoch seconds; every envelope carries it).
        size: How many jobs it holds.
        groups: Its jobs, grouped by queue.
    """

    tenant: str
    submitted_at: float
    size: int
    groups: list[QueueGroup]
