"""The queue and the job store in one transaction (both tables in one PostgreSQL database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from psycopg2.errors import NotNullViolation, UniqueViolation

from tornado_core.adapters.postgres.jobs import queued_statement, write_successes
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.adapters.postgres.prepared import execute_in_one_message
from tornado_core.adapters.postgres.queue import PostgresQueue, delete_received, missing_queue, send_statement
from tornado_core.errors import QueueUnavailable, StoreUnavailable
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.ports.queue_and_jobs import Completion


class PostgresQueueAndJobs:
    """Messages with their ``queued`` rows, and successes with their deletes, each in one commit.

    Args:
        pool: Pool of the database holding both ``tornado_messages`` and ``tornado_jobs``.

    A crash before a commit loses the whole of it (no message without its row, no success
    without its delete: the message reappears and the job runs again, as it never succeeded);
    after it, none of it is lost.
    """

    max_send_batch = PostgresQueue.max_send_batch
    max_send_batch_bytes = PostgresQueue.max_send_batch_bytes

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def send_recorded(
        self, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob]
    ) -> list[str | None]:
        """Store the messages and the jobs' ``queued`` rows in one durable transaction.

        Raises:
            QueueUnavailable: The queue does not exist or PostgreSQL cannot be reached
                (nothing was stored).
        """
        if len(messages) != len(jobs):
            raise ValueError(f"{len(messages)} messages but {len(jobs)} jobs")
        if len(messages) > self.max_send_batch:
            raise ValueError(f"at most {self.max_send_batch} messages per batch, got {len(messages)}")
        if not messages:
            return []
        # Fresh ids (no idempotency key) are new to the store: tried with a plain insert first.
        all_new = all(job.idempotency_key is None for job in jobs)
        try:
            try:
                self._store(queue, messages, jobs, all_new=all_new)
            except UniqueViolation:  # a known id after all (a re-sent job): nothing was stored
                self._store(queue, messages, jobs, all_new=False)
        except StoreUnavailable as exc:
            raise QueueUnavailable(f"PostgreSQL queue unavailable: {exc}") from exc
        return [None] * len(messages)

    def _store(
        self, queue: str, messages: Sequence[OutgoingMessage], jobs: Sequence[NewJob], *, all_new: bool
    ) -> None:
        # One round trip, one transaction (no BEGIN or COMMIT of its own): a failure of either
        # statement rolls back both.
        with self._pool.connection(one_message=True) as conn, conn.cursor() as cur:
            try:
                execute_in_one_message(
                    cur, queued_statement(jobs, all_new=all_new), send_statement(queue, messages)
                )
            except NotNullViolation as exc:
                if exc.diag.table_name != "tornado_messages":
                    raise
                raise missing_queue(queue) from exc  # the messages had no queue to go to

    def complete(self, completions: Sequence[Completion]) -> None:
        """Record the successes and delete the messages.

        A deleted queue or a stale receipt only means that message is not deleted: the success
        is recorded all the same.

        Raises:
            StoreUnavailable: PostgreSQL cannot be reached (nothing was written).
        """
        if not completions:
            return
        receipts: dict[str, list[str]] = defaultdict(list)
        for completion in completions:
            receipts[completion.queue].append(completion.receipt)
        with self._pool.connection() as conn, conn.cursor() as cur:
            write_successes(cur, [c.success for c in completions])
            for queue, batch in receipts.items():
                delete_received(cur, queue, batch, wait_for_flush=True)
