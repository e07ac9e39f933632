"""The consumer path: the worker loop, the job runner, acknowledgements and dead letters.

``loop`` receives messages, parses each body once into a delivery and keeps them hidden
while they run; ``runner`` runs one delivery (claim, handler, result, retry or dead letter)
and acknowledges it through a sink from ``acks`` (at once, or in batches for the loop);
``dead_letters`` lists, redrives and discards what reached a dead-letter queue.
"""

from tornado_core.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
