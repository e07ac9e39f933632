"""The consumer path: the worker loop, the job runner, acknowledgements and dead letters.

``loop`` receives messages and keeps them hidden while they run; ``runner`` runs one job
(claim, handler, result, retry or dead letter); ``acks`` deletes finished messages in batches;
``dead_letters`` lists, redrives and discards what reached a dead-letter queue.
"""

from tornado_core.worker.loop import Worker, WorkerOptions

__all__ = ["Worker", "WorkerOptions"]
