"""A handler sees its job's cancellation through its context: a flag, a check, and every progress report."""

from __future__ import annotations

import time

import pytest

from tornado_core import JobCancelled, TaskContext


def context(cancelled: list[bool], reports: list[float]) -> TaskContext:
    return TaskContext(
        job_id="j1", task="demo.sleep", version="1", tenant="acme", attempt=1, s3=None, rds=None,  # type: ignore[arg-type]
        redshift=None, logger=None, deadline=time.monotonic() + 60,  # type: ignore[arg-type]
        _progress_sink=lambda fraction, _note: reports.append(fraction),
        cancel_requested=lambda: cancelled[0],
    )  # fmt: skip


def test_before_a_cancellation_nothing_stops_the_handler() -> None:
    reports: list[float] = []
    ctx = context([False], reports)
    ctx.progress(0.5)
    ctx.check_cancelled()
    assert not ctx.cancelled and reports == [0.5]


def test_after_a_cancellation_the_next_progress_report_raises_and_is_not_recorded() -> None:
    cancelled, reports = [False], []
    ctx = context(cancelled, reports)
    ctx.progress(0.25)
    cancelled[0] = True  # what the heartbeat does when the job store says so
    assert ctx.cancelled
    with pytest.raises(JobCancelled, match="j1 was cancelled"):
        ctx.progress(0.5)
    with pytest.raises(JobCancelled):
        ctx.check_cancelled()
    assert reports == [0.25]
