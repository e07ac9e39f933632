"""Global concurrency cap per task, shared by every worker process and container."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class ConcurrencyLimiterPort(Protocol):
    """Slots per task. A slot held by a process that dies is released by itself."""

    def try_acquire(self, task: str, limit: int) -> AbstractContextManager[None] | None:
        """Take a free slot, or return ``None`` at once if all ``limit`` are taken.

        The returned context manager releases the slot on exit.
        """
