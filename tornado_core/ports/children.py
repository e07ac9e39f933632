"""The child-jobs port: jobs a running job queues and waits for (fan-out, then fan-in)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tornado_core.ports.jobs import JobRecord


class ChildJobsPort(Protocol):
    """What a handler reaches as ``ctx.children``."""

    def submit(self, task: str, payload: dict[str, Any], *, key: str) -> str:
        """Queue a child job of the running job, for its tenant; returns the child's job id.

        The id derives from the parent's id and ``key``: when the parent is run again (a retry,
        a worker killed midway), submitting the same key finds the same child instead of a new one.

        Args:
            task: The child's task (internal tasks are allowed).
            payload: Its payload, validated like any submission.
            key: Names the child among its siblings (``"part-3"``).

        Raises:
            PayloadInvalid: The payload does not fit the task.
            TaskNotFound: Unknown task.
        """

    def wait(
        self, job_ids: Sequence[str], *, on_done: Callable[[int], None] | None = None
    ) -> list[JobRecord]:
        """Block until every child succeeded; their records, in the order of ``job_ids``.

        Args:
            job_ids: The children (from :meth:`submit`).
            on_done: Called with the number of children done whenever it grows.

        Raises:
            ChildJobFailed: A child ended dead or failed (the parent cannot succeed).
            JobTimeout: The parent's deadline passed first.
        """
