"""Success records and acknowledgements in one transaction (job store and queue in one database)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tornado_core.adapters.postgres.jobs import write_successes
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.adapters.postgres.queue import delete_received
from tornado_core.ports.completions import Completion


class PostgresCompletions:
    """Marks jobs succeeded and deletes their messages in one durable commit.

    Args:
        pool: Pool of the database holding both ``tornado_jobs`` and ``tornado_messages``.

    A crash before the commit loses both (the message reappears and the job runs again, as it
    never succeeded); after it, neither is lost. A deleted queue or a stale receipt only means
    that message is not deleted: the success is recorded all the same.

    Raises:
        StoreUnavailable: PostgreSQL cannot be reached (nothing was written).
    """

    def __init__(self, pool: PostgresPool) -> None:
        self._pool = pool

    def complete(self, completions: Sequence[Completion]) -> None:
        """Record the successes and delete the messages (see :class:`CompletionPort`)."""
        if not completions:
            return
        receipts: dict[str, list[str]] = defaultdict(list)
        for completion in completions:
            receipts[completion.queue].append(completion.receipt)
        with self._pool.connection() as conn, conn.cursor() as cur:
            write_successes(cur, [c.success for c in completions])
            for queue, batch in receipts.items():
                delete_received(cur, queue, batch, wait_for_flush=True)
