"""Delayed jobs through the API on the in-memory queue: delay or run_at, bounded, never both.

Up to the queue's own 15 minutes a delayed job waits in its queue; beyond, it is answered
``scheduled`` and waits in the schedules store until a scheduler's pass sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit.test_web_api import ApiTestCase
from tornado_core.ports.schedules import MAX_SCHEDULE_AHEAD
from tornado_core.scheduling.scheduler import Scheduler


def echo(**extra: object) -> dict[str, object]:
    return {"task": "demo.echo", "payload": {"message": "later"}, **extra}


class TestDelayedJobs(ApiTestCase):
    def depth(self) -> tuple[int, int]:
        depth = self.queue.depth(self.queues["demo.echo"])
        return depth.visible, depth.delayed

    def test_a_delayed_job_waits_in_its_queue_invisible(self) -> None:
        assert self.call("POST", "/v1/jobs", echo(delay=600))[0] == 202
        assert self.depth() == (0, 1)

    def test_run_at_in_the_future_delays_and_in_the_past_runs_at_once(self) -> None:
        soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        assert self.call("POST", "/v1/jobs", echo(run_at=soon))[0] == 202
        past = (datetime.now(UTC) - timedelta(hours=1)).astimezone().isoformat()
        assert self.call("POST", "/v1/jobs", echo(run_at=past))[0] == 202
        assert self.depth() == (1, 1)

    def test_bad_delays_are_422_naming_the_field_and_queue_nothing(self) -> None:
        later = (datetime.now(UTC) + timedelta(seconds=MAX_SCHEDULE_AHEAD + 60)).isoformat()
        cases = [
            (echo(delay=-1), "delay"),
            (echo(delay=MAX_SCHEDULE_AHEAD + 1), "delay"),
            (echo(delay="60"), "delay"),
            (echo(delay=True), "delay"),
            (echo(run_at="tomorrow"), "run_at"),
            (echo(run_at="2026-11-30T08:00:00"), "run_at"),  # no offset: ambiguous
            (echo(run_at=later), "run_at"),
            (echo(delay=5, run_at=later), "run_at"),
        ]
        for body, field in cases:
            status, answer, _ = self.call("POST", "/v1/jobs", body)
            assert status == 422, (body, answer)
            self.assert_error(status, answer, "request_invalid", field)
        assert self.depth() == (0, 0)

    def test_a_batch_sends_each_item_with_its_own_delay(self) -> None:
        status, answer, _ = self.call(
            "POST", "/v1/jobs:batch", {"jobs": [echo(), echo(delay=300), echo(delay=-5)]}
        )
        assert status == 200 and answer["accepted"] == 2
        assert answer["results"][2]["error"]["fields"][0]["field"] == "delay"
        assert self.depth() == (1, 1)


class TestScheduledJobs(ApiTestCase):
    """Beyond 900 seconds: parked as ``scheduled``, sent by the scheduler when due, cancellable."""

    def scheduler(self, ahead: float) -> Scheduler:
        return Scheduler(
            self.services, self.schedules, clock=lambda: datetime.now(UTC) + timedelta(seconds=ahead)
        )

    def depth(self) -> tuple[int, int]:
        depth = self.queue.depth(self.queues["demo.echo"])
        return depth.visible, depth.delayed

    def test_a_job_twenty_minutes_ahead_is_scheduled_and_queued_once_when_due(self) -> None:
        status, receipt, _ = self.call("POST", "/v1/jobs", echo(delay=1200))
        assert (status, receipt["status"]) == (202, "scheduled")
        assert self.depth() == (0, 0) and self.schedules.parked() == 1
        assert self.call("GET", f"/v1/jobs/{receipt['id']}")[1]["status"] == "scheduled"
        assert self.scheduler(ahead=600).tick().released == 0  # not due within the look-ahead yet
        assert self.scheduler(ahead=1200).tick().released == 1
        assert self.depth() == (1, 0) and self.schedules.parked() == 0
        assert self.call("GET", f"/v1/jobs/{receipt['id']}")[1]["status"] == "queued"
        assert self.scheduler(ahead=1300).tick().released == 0  # sent once

    def test_the_look_ahead_sends_early_with_the_rest_of_the_wait_as_the_queue_delay(self) -> None:
        run_at = (datetime.now(UTC) + timedelta(seconds=1000)).isoformat()
        assert self.call("POST", "/v1/jobs", echo(run_at=run_at))[1]["status"] == "scheduled"
        assert self.scheduler(ahead=990).tick().released == 1
        assert self.depth() == (0, 1)

    def test_a_cancelled_scheduled_job_is_never_sent(self) -> None:
        receipt = self.call("POST", "/v1/jobs", echo(delay=3600))[1]
        status, answer, _ = self.call("POST", f"/v1/jobs/{receipt['id']}:cancel")
        assert (status, answer["status"]) == (200, "cancelled")
        assert self.scheduler(ahead=7200).tick().released == 0
        assert self.depth() == (0, 0) and self.schedules.parked() == 0
        assert self.call("GET", f"/v1/jobs/{receipt['id']}")[1]["status"] == "cancelled"

    def test_a_batch_parks_its_far_items_and_queues_the_rest(self) -> None:
        items = [echo(), echo(delay=86_400), echo(delay=60)]
        status, answer, _ = self.call("POST", "/v1/jobs:batch", {"jobs": items})
        assert status == 200 and answer["accepted"] == 3
        assert [r["status"] for r in answer["results"]] == ["queued", "scheduled", "queued"]
        assert self.depth() == (1, 1) and self.schedules.parked() == 1
