"""The long poll of the brokers that cannot block on a queue: look, then pause 10 ms doubling up to 200 ms."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

#: Longest pause between two looks at an empty queue during a long poll, in seconds.
MAX_POLL_PAUSE = 0.2
#: The first pause, in seconds.
FIRST_POLL_PAUSE = 0.01

T = TypeVar("T")


def long_poll(
    look: Callable[[], list[T]], wait_seconds: float, *, pause: Callable[[float], object] = time.sleep
) -> list[T]:
    """What ``look()`` finds, looking again until it finds something or ``wait_seconds`` pass.

    Args:
        look: One look at the queue.
        wait_seconds: How long to keep looking.
        pause: Waits up to its argument in seconds between two looks; a broker that can be woken
            by a send returns early.
    """
    deadline = time.monotonic() + max(0.0, wait_seconds)
    step = FIRST_POLL_PAUSE
    while True:
        found = look()
        left = deadline - time.monotonic()
        if found or left <= 0:
            return found
        pause(min(step, left))
        step = min(step * 2, MAX_POLL_PAUSE)
