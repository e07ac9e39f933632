"""The console's dead-letter browser on each queue backend: look without consuming, then act on one letter."""

from __future__ import annotations

import pytest

from tests.integration.console_jobs_fixtures import (
    Tools,
    envelope,
    insert_jobs,
    read_all,
    send_letters,
    tools_fixture,  # noqa: F401 - the fixture
)
from tornado_core.console.dead_letters import DeadLetterView
from tornado_core.message import Envelope
from tornado_core.ports.jobs import JobStatus

pytestmark = pytest.mark.integration


def letters_of(tools: Tools, task: str) -> dict[str | None, DeadLetterView]:
    return {view.job_id: view for view in tools.browser.list(task, "1.0.0", limit=100)}


def test_listing_shows_each_letter_with_its_jobs_error_and_leaves_it_there(tools: Tools, prefix: str) -> None:
    task = f"{prefix}.dlq"
    _, dlq = tools.version_queues(task, "1.0.0")
    dead = insert_jobs(tools.pool, prefix=prefix, count=5, status="dead", task=task, error="disk full")
    send_letters(tools.queue, dlq, [envelope(j, task) for j in dead] + ["not an envelope"])

    first = letters_of(tools, task)
    assert letters_of(tools, task).keys() == first.keys() == {*dead, None}
    assert tools.queue.depth(dlq).visible == 6  # nothing consumed, nothing left hidden
    for job_id in dead:
        view = first[job_id]
        assert (view.task, view.tenant, view.version) == (task, "acme", "1.0.0")
        assert view.job is not None and (view.job.status, view.job.error_message) == (
            JobStatus.DEAD,
            "disk full",
        )
    assert first[None].body == "not an envelope" and first[None].job is None


def test_one_letter_is_inspected_redriven_and_purged_by_its_message_id(tools: Tools, prefix: str) -> None:
    task = f"{prefix}.one"
    source, dlq = tools.version_queues(task, "1.0.0")
    kept, redriven, purged = insert_jobs(tools.pool, prefix=prefix, count=3, status="dead", task=task)
    send_letters(tools.queue, dlq, [envelope(j, task) for j in (kept, redriven, purged)])
    ids = {job_id: view.message_id for job_id, view in letters_of(tools, task).items()}

    inspected = tools.browser.inspect(task, "1.0.0", ids[kept])
    assert inspected is not None and inspected.job_id == kept
    assert Envelope.from_json(inspected.body).payload == {"n": kept}
    assert tools.browser.inspect(task, "1.0.0", "no-such-message") is None
    assert tools.queue.depth(dlq).visible == 3  # looking left every letter visible

    assert tools.browser.redrive_one(task, "1.0.0", ids[redriven]) == redriven
    assert tools.browser.purge_one(task, "1.0.0", ids[purged]) == purged
    assert tools.browser.redrive_one(task, "1.0.0", ids[purged]) is None  # gone: nothing done

    records = tools.search.records([kept, redriven, purged])
    assert [records[j].status for j in (kept, redriven, purged)] == [
        JobStatus.DEAD,
        JobStatus.QUEUED,
        JobStatus.FAILED,
    ]
    assert [Envelope.from_json(m.body).job_id for m in read_all(tools.queue, source)] == [redriven]
    assert letters_of(tools, task).keys() == {kept}


def test_a_redriven_letters_job_that_a_worker_already_runs_keeps_running(tools: Tools, prefix: str) -> None:
    task = f"{prefix}.race"
    _, dlq = tools.version_queues(task, "1.0.0")
    job_id = insert_jobs(tools.pool, prefix=prefix, count=1, status="running", task=task)[0]
    send_letters(tools.queue, dlq, [envelope(job_id, task)])  # a stale copy left in the DLQ
    message_id = letters_of(tools, task)[job_id].message_id

    assert tools.browser.redrive_one(task, "1.0.0", message_id) == job_id
    record = tools.search.records([job_id])[job_id]
    assert record.status is JobStatus.RUNNING
