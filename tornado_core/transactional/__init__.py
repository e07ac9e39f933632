"""Transactional enqueue: a job exists if and only if the caller's database transaction commits.

Three ways, by where the application's data lives (docs/transactional-enqueue.md):

* :class:`TransactionalEnqueuer` (PostgreSQL queue in the application's database): the job is
  written with the caller's connection, inside its transaction;
* :func:`add_to_outbox` (any queue, SQS in particular): a row in the caller's database, turned
  into exactly one job by ``tornado outbox relay`` after the commit;
* :func:`~tornado_core.transactional.django.enqueue_on_commit` (Django, neither of the above):
  submitted through the API once the transaction commits.
"""

from tornado_core.transactional.entries import EntryInvalid, UnknownTenant
from tornado_core.transactional.in_transaction import TransactionalEnqueuer
from tornado_core.transactional.outbox import add_many_to_outbox, add_to_outbox
from tornado_core.transactional.relay import OutboxRelay, RelayOptions, RelayReport

__all__ = [
    "EntryInvalid",
    "OutboxRelay",
    "RelayOptions",
    "RelayReport",
    "TransactionalEnqueuer",
    "UnknownTenant",
    "add_many_to_outbox",
    "add_to_outbox",
]
