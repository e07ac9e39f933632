"""Unique jobs: at most one job in flight per tenant, task and value of some payload fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UniqueJobs:
    """A task's uniqueness rule: one SPED per company and period in flight, one AFD per REP and day.

    While a job of the task with the same tenant and the same values of :attr:`fields` is waiting,
    running or retrying (and for :attr:`window` seconds after it finished), submitting another
    returns that job instead of queueing a second one. Concurrent submissions included: the job
    store decides, in one statement.

    Attributes:
        fields: Names of top-level payload fields whose values make the key.
        window: Seconds after the job finished during which it still answers for its key.
    """

    fields: tuple[str, ...]
    window: float = 0.0

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a uniqueness rule names at least one payload field")
        if self.window < 0:
            raise ValueError("the uniqueness window is a number of seconds, not negative")

    def key(self, payload: Mapping[str, Any]) -> str:
        """The key of a (validated) payload: its fields' values, as canonical JSON."""
        values = [payload.get(name) for name in self.fields]
        return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
