"""Retry policy and backoff as pure values and functions."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a failing job is retried.

    Attributes:
        max_attempts: Total runs before the job is dead-lettered; also the
            queue's ``maxReceiveCount``.
        backoff_base: Delay in seconds before the second attempt.
        backoff_factor: Multiplier per further attempt.
        backoff_max: Upper bound of any delay (SQS allows at most 12 h).
        jitter: Fraction of the delay randomised away (0 disables it).
    """

    max_attempts: int = 5
    backoff_base: float = 2.0
    backoff_factor: float = 2.0
    backoff_max: float = 900.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed ``attempt`` (1-based) before the next one.

    Exponential, capped, with "equal jitter": the delay never falls below
    ``(1 - jitter)`` of the exponential value, so delays still grow.
    """
    exponent = max(attempt - 1, 0)
    delay = min(policy.backoff_base * policy.backoff_factor**exponent, policy.backoff_max)
    if policy.jitter:
        spread = delay * policy.jitter
        delay = delay - spread + (rng or random).random() * spread
    return delay
