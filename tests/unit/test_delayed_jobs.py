"""Delayed jobs through the API on the in-memory queue: delay or run_at, bounded, never both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.unit.test_web_api import ApiTestCase


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
        later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        cases = [
            (echo(delay=-1), "delay"),
            (echo(delay=901), "delay"),
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
