"""Claiming the jobs of a whole receive at once, and giving back what will not run.

The worker claims every job of a receive in one job store transaction (instead of one per job)
and attaches each answer to its :class:`~tornado_core.worker.runner.Delivery`; the runner acts on
it when the job starts. Messages returned unstarted (a stopping worker's prefetch) give their
claims back, so that another worker can take those jobs at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tornado_core.errors import BackendError
from tornado_core.ports.jobs import Claim, ClaimOutcome, JobStorePort
from tornado_core.worker.runner import Delivery, JobRunner

logger = logging.getLogger("tornado.worker")


class ReceiveClaims:
    """Claims and releases the jobs of received messages in batches.

    Args:
        jobs: The job store.
        runner: Says what to claim for a delivery (:meth:`JobRunner.claim_for`).
        lease_seconds: The lease of each claim (the task's visibility timeout).
    """

    def __init__(self, jobs: JobStorePort, runner: JobRunner, *, lease_seconds: float) -> None:
        self._jobs = jobs
        self._runner = runner
        self._lease = lease_seconds

    def claim_together(self, deliveries: Sequence[Delivery], *, held: set[str]) -> None:
        """Claim the jobs of one receive in one transaction; each delivery gets its answer.

        Left to the runner (which claims one job on its own): unreadable messages, copies
        of a job in ``held``, and every copy after the first of a job this receive brought
        twice (a re-submitted idempotency key): they are parked until that run ends and then
        find the job done, instead of being refused as busy and hidden for a visibility
        timeout. If the batch claim fails, every job is left to the runner, which isolates a
        bad message and handles a store outage as it always has.

        Args:
            deliveries: The messages of the receive.
            held: Ids of the jobs this worker already holds.
        """
        picked: list[tuple[Delivery, Claim]] = []
        taken = set(held)
        for delivery in deliveries:
            claim = self._runner.claim_for(delivery)
            if claim is not None and isinstance(claim.job.job_id, str) and claim.job.job_id not in taken:
                taken.add(claim.job.job_id)
                picked.append((delivery, claim))
        if not picked:
            return
        try:
            answers = self._jobs.claim_many([claim for _, claim in picked], lease_seconds=self._lease)
        except Exception as exc:  # the runner claims each job on its own instead
            logger.warning("claiming %d job(s) together failed (%s): claiming one by one", len(picked), exc)
            return
        for (delivery, _), answer in zip(picked, answers, strict=True):
            delivery.claim = answer

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give back the jobs claimed for messages that will not run here (best effort)."""
        claims = [
            claim
            for delivery in deliveries
            if delivery.claim is ClaimOutcome.CLAIMED and (claim := self._runner.claim_for(delivery))
        ]
        if claims:
            try:
                self._jobs.release(claims)
            except BackendError as exc:  # their leases run out by themselves
                logger.warning("could not give back %d claimed job(s): %s", len(claims), exc)
