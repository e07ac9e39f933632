"""Timeouts for many requests on few timers: ``asyncio.timeout`` semantics, one timer per tick.

``asyncio.timeout_at`` arms and cancels a timer for every request; at thousands of requests a
second that bookkeeping showed in the API's profile. Here a deadline is rounded up to the next
tick (50 ms by default) and every request whose deadline falls in the same tick shares one
timer. When it fires, each request still inside its ``async with`` is cancelled, and the
cancellation comes out of the block as :class:`TimeoutError`, as with ``asyncio.timeout``.
A deadline is therefore kept at most one tick late, never early.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

#: Seconds between the deadlines that share a timer.
TICK = 0.05


class SharedTimeouts:
    """The timeouts of one event loop's requests (use it from that loop only).

    Args:
        tick: Deadlines are rounded up to a multiple of this many seconds.
    """

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._slots: dict[int, set[SharedTimeout]] = {}

    def at(self, deadline: float) -> SharedTimeout:
        """A block that raises :class:`TimeoutError` once the loop's clock passes ``deadline``."""
        return SharedTimeout(self, deadline)

    def _arm(self, timeout: SharedTimeout, deadline: float) -> set[SharedTimeout]:
        slot = math.ceil(deadline / self._tick)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = set()
            asyncio.get_running_loop().call_at(slot * self._tick, self._expire, slot)
        members.add(timeout)
        return members

    def _expire(self, slot: int) -> None:
        for timeout in self._slots.pop(slot, ()):
            timeout.expire()

    def __len__(self) -> int:
        """Blocks waiting for a deadline now."""
        return sum(len(members) for members in self._slots.values())


class SharedTimeout:
    """One ``async with`` block under a shared deadline (see :meth:`SharedTimeouts.at`)."""

    __slots__ = ("_cancelling", "_deadline", "_expired", "_members", "_owner", "_task")

    def __init__(self, owner: SharedTimeouts, deadline: float) -> None:
        self._owner = owner
        self._deadline = deadline
        self._task: asyncio.Task[object] | None = None
        self._members: set[SharedTimeout] | None = None
        self._cancelling = 0
        self._expired = False

    async def __aenter__(self) -> SharedTimeout:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a shared timeout is used inside a task")
        self._task, self._cancelling = task, task.cancelling()
        if self._deadline <= asyncio.get_running_loop().time():
            self.expire()
        else:
            self._members = self._owner._arm(self, self._deadline)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._members is not None:
            self._members.discard(self)
        # Ours was the only new cancellation: it is the timeout's, not the caller's.
        expired = self._expired and self._task is not None and self._task.uncancel() <= self._cancelling
        if expired and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline passed: cancel the task inside the block."""
        if not self._expired and self._task is not None:
            self._expired = True
            self._task.cancel()
