"""Concurrency caps and rate limits shared by every worker process and container."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol


class ConcurrencyLimiterPort(Protocol):
    """Slots per task. A slot held by a process that dies is released by itself."""

    def try_acquire(self, task: str, limit: int) -> AbstractContextManager[None] | None:
        """Take a free slot, or return ``None`` at once if all ``limit`` are taken.

        The returned context manager releases the slot on exit.
        """

    def try_acquire_many(self, task: str, limit: int, count: int) -> list[AbstractContextManager[None]]:
        """Take up to ``count`` free slots at once: fewer when others hold them, none when all are held.

        Each returned context manager releases its own slot on exit.
        """

    def release_many(self, slots: Sequence[AbstractContextManager[None]]) -> None:
        """Release slots taken (and entered) but handed to no job, together."""


class RateLimiterPort(Protocol):
    """Token buckets by key, shared by every worker process and container."""

    def try_take(self, key: str, *, per_second: float, capacity: float) -> float:
        """Take one token from the bucket of ``key`` (full when first seen).

        Returns:
            ``0.0`` if a token was taken, else the seconds until the next one is due.

        Raises:
            StoreUnavailable: The store cannot be reached.
        """
