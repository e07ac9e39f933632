"""The heartbeat keeps a job's lease ending before its message reappears, beat after beat.

When a worker dies, its job's message reappears one visibility timeout after the last beat. Its
lease must have run out by then, or the next worker finds the job busy and hides the message for
a whole second timeout (a kill -9 used to cost one or two timeouts, depending on how far the two
heartbeat threads had drifted apart).
"""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import BaseModel

from tornado_core.ports.queue import ReceivedMessage
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.heartbeat import Heartbeat
from tornado_core.worker.runner import Delivery

VISIBILITY = 0.6


class Nothing(BaseModel):
    pass


def spec() -> TaskSpec:
    return TaskSpec(
        name="probe.held", version="1.0.0", payload_model=Nothing, handler=lambda ctx, p: None,
        visibility_timeout=VISIBILITY, timeout=60,
    )  # fmt: skip


def test_a_lease_is_a_moment_shorter_than_the_visibility_timeout() -> None:
    assert 0 < VISIBILITY - spec().lease_seconds <= 1.0
    long = TaskSpec(name="probe.long", version="1.0.0", payload_model=Nothing, handler=lambda c, p: None)
    assert long.visibility_timeout - long.lease_seconds == pytest.approx(1.0)


class Beats:
    """Where each heartbeat left the message's hiding and the job's lease; the job store is slow."""

    def __init__(self) -> None:
        self.hidden_until: list[float] = []
        self.leased_until: list[float] = []
        self._lock = threading.Lock()

    def change_visibility(self, queue: str, receipt: str, seconds: float) -> None:
        with self._lock:
            self.hidden_until.append(time.monotonic() + seconds)

    def extend_lease(self, job_id: str, *, lease_seconds: float) -> bool:
        time.sleep(0.04)  # a slow job store: the lease thread's calls take longer than the queue's
        with self._lock:
            self.leased_until.append(time.monotonic() + lease_seconds)
        return False

    def count(self) -> int:
        with self._lock:
            return min(len(self.hidden_until), len(self.leased_until))


def test_every_lease_ends_before_its_message_reappears_even_when_the_store_is_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services: Services = memory_services([spec()])
    beats = Beats()
    monkeypatch.setattr(services.queue, "change_visibility", beats.change_visibility)
    monkeypatch.setattr(services.jobs, "extend_lease", beats.extend_lease)
    message = ReceivedMessage(message_id="m1", body="{}", receipt="r1", receive_count=1)
    delivery = Delivery(queue="q", message=message, started=time.monotonic(), envelope=None)
    heartbeat = Heartbeat(services, spec(), lambda: [(delivery, "job-1")])
    heartbeat.start()
    deadline = time.monotonic() + 10
    while beats.count() < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    heartbeat.stop()
    count = beats.count()
    assert count >= 6
    late = [k for k in range(count) if beats.leased_until[k] >= beats.hidden_until[k]]
    assert late == [], f"beats whose lease outlived the message's hiding: {late}"
