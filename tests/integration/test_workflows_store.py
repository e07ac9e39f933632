"""Workflows in PostgreSQL: advancement under row locks (two advancers at once), results passed on,
failure propagation, cancellation."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg2
import pytest

from tornado_core.adapters.postgres import PostgresJobStore
from tornado_core.adapters.postgres.pool import PostgresPool
from tornado_core.adapters.postgres.workflows import PostgresWorkflows
from tornado_core.job_ids import JobIds
from tornado_core.ports.jobs import Failure, JobStatus, NewJob
from tornado_core.ports.workflows import NewWorkflow, StepSpec, WorkflowStatus
from tornado_core.workflows.advancer import WorkflowAdvancer
from tornado_core.workflows.declare import result_of

SCOPE = "wfit"
TENANT = "acme"


class RecordingSubmitter:
    """Stands for DirectSubmitter: records each step's job ``queued`` (id from its key) and counts calls."""

    def __init__(self, jobs: PostgresJobStore, *, pause: float = 0.0) -> None:
        self._jobs = jobs
        self._ids = JobIds("test-secret")
        self._pause = pause
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.payloads: dict[str, Any] = {}

    def submit(self, *, task: str, tenant: str, payload: Any, key: str, record_key: bool = False) -> str:
        job_id = self._ids.for_idempotency_key(tenant, key)
        with self._lock:
            self.calls[key] += 1
            self.payloads[key] = payload
        time.sleep(self._pause)  # a slow queue: the other advancer runs meanwhile
        if self._jobs.get(job_id) is None:
            new = NewJob(
                job_id=job_id,
                tenant=tenant,
                task=task,
                version="1.0.0",
                submitted_at=time.time(),
                idempotency_key=key,
            )
            self._jobs.record_queued([new])
        return job_id


@dataclass
class Db:
    url: str
    store: PostgresWorkflows
    jobs: PostgresJobStore
    direct: RecordingSubmitter

    def advancer(self, direct: RecordingSubmitter | None = None) -> WorkflowAdvancer:
        services: Any = SimpleNamespace(
            jobs=self.jobs, objects=None, settings=SimpleNamespace(queue_prefix=SCOPE)
        )
        return WorkflowAdvancer(services, self.store, direct=direct or self.direct)  # type: ignore[arg-type]

    def create(self, workflow_id: str, *steps: StepSpec) -> None:
        self.store.create(
            NewWorkflow(workflow_id=workflow_id, tenant=TENANT, name="t", scope=SCOPE, steps=steps)
        )

    def job_of(self, workflow_id: str, step: str) -> str:
        found = self.store.get(workflow_id)
        assert found is not None
        job_id = found.step(step).job_id
        assert job_id is not None, f"step {step} has no job"
        return job_id


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[Db]:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=6)
    jobs = PostgresJobStore(pool)
    yield Db(fresh_database_url, PostgresWorkflows(pool), jobs, RecordingSubmitter(jobs))
    pool.close()


def spec(name: str, task: str = "demo.echo", payload: dict[str, Any] | None = None, *after: str) -> StepSpec:
    return StepSpec(name=name, task=task, payload=payload or {}, after=tuple(after))


def statuses(db: Db, workflow_id: str) -> dict[str, str]:
    found = db.store.get(workflow_id)
    assert found is not None
    return {s.name: s.current_status().value for s in found.steps}


def test_a_chain_moves_step_by_step_with_each_result_passed_on(db: Db) -> None:
    db.create(
        "wf_chain",
        spec("a", payload={"message": "hi"}),
        spec("b", "demo.echo", {"message": result_of("a", "message")}, "a"),
        spec("c", "demo.add", {"numbers": [result_of("b", "n")]}, "b"),
    )
    advancer = db.advancer()
    assert advancer.tick() == 1
    assert statuses(db, "wf_chain") == {"a": "queued", "b": "waiting", "c": "waiting"}
    db.jobs.record_success(db.job_of("wf_chain", "a"), result={"message": "hi there"}, result_ref=None)
    advancer.tick()
    assert db.direct.payloads["workflow:wf_chain:b"] == {"message": "hi there"}
    db.jobs.record_success(db.job_of("wf_chain", "b"), result={"n": 7}, result_ref=None)
    advancer.tick()
    assert db.direct.payloads["workflow:wf_chain:c"] == {"numbers": [7]}
    db.jobs.record_success(db.job_of("wf_chain", "c"), result={"sum": 7}, result_ref=None)
    advancer.tick()
    done = db.store.get("wf_chain")
    assert done is not None and done.status is WorkflowStatus.SUCCEEDED and done.finished_at is not None
    assert set(db.direct.calls.values()) == {1}
    assert advancer.tick() == 0  # a finished workflow is never looked at again


def test_a_failed_step_skips_what_comes_after_it_and_fails_the_workflow_naming_it(db: Db) -> None:
    db.create(
        "wf_fail",
        spec("a"),
        spec("b", "demo.echo", {}, "a"),
        spec("c", "demo.echo", {}, "b"),
        spec("d"),
        spec("e", "demo.echo", {}, "a", "d"),
    )
    advancer = db.advancer()
    advancer.tick()
    failure = Failure(error_type="RuntimeError", message="SEFAZ said no")
    db.jobs.record_failure(db.job_of("wf_fail", "a"), status=JobStatus.DEAD, failure=failure)
    advancer.tick()
    assert statuses(db, "wf_fail") == {
        "a": "failed",
        "b": "skipped",
        "c": "skipped",
        "d": "queued",
        "e": "skipped",
    }
    running = db.store.get("wf_fail")
    assert running is not None and running.status is WorkflowStatus.RUNNING  # d may still run
    db.jobs.record_success(db.job_of("wf_fail", "d"), result=None, result_ref=None)
    advancer.tick()
    failed = db.store.get("wf_fail")
    assert failed is not None
    assert (failed.status, failed.failed_step, failed.error) == (
        WorkflowStatus.FAILED,
        "a",
        "RuntimeError: SEFAZ said no",
    )
    assert failed.to_json()["progress"] == {"finished": 5, "steps": 5, "fraction": 1.0}


def test_a_missing_result_field_fails_the_step_that_needs_it(db: Db) -> None:
    db.create("wf_input", spec("a"), spec("b", "demo.echo", {"message": result_of("a", "nope")}, "a"))
    advancer = db.advancer()
    advancer.tick()
    db.jobs.record_success(db.job_of("wf_input", "a"), result={"message": "x"}, result_ref=None)
    advancer.tick()
    failed = db.store.get("wf_input")
    assert failed is not None and failed.status is WorkflowStatus.FAILED and failed.failed_step == "b"
    assert "no field 'nope'" in (failed.error or "")
    assert "workflow:wf_input:b" not in db.direct.calls


def test_two_advancers_at_once_submit_each_step_exactly_once(db: Db) -> None:
    names = [f"wf_pair{n:02d}" for n in range(12)]
    for name in names:
        db.create(name, spec("x"), spec("y"), spec("z", "demo.echo", {}, "x", "y"))
    slow = RecordingSubmitter(db.jobs, pause=0.02)
    advancers = [db.advancer(slow), db.advancer(slow)]
    passed: list[int] = []
    threads = [threading.Thread(target=lambda a=a: passed.append(a.tick())) for a in advancers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(passed) >= len(names)
    assert sorted(slow.calls) == sorted(f"workflow:{n}:{s}" for n in names for s in ("x", "y"))
    assert set(slow.calls.values()) == {1}
    assert all(statuses(db, n) == {"x": "queued", "y": "queued", "z": "waiting"} for n in names)


def test_an_advancer_skips_a_workflow_another_holds(db: Db) -> None:
    db.create("wf_held", spec("a"))
    with psycopg2.connect(db.url) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM tornado_workflows WHERE workflow_id = 'wf_held' FOR UPDATE")
        assert db.advancer().tick() == 0  # not blocked: skipped
        conn.rollback()
    conn.close()
    assert db.advancer().tick() == 1


def test_cancelling_stops_waiting_steps_and_asks_queued_jobs_to_stop(db: Db) -> None:
    db.create("wf_cancel", spec("a"), spec("b", "demo.echo", {}, "a"))
    db.advancer().tick()
    asked: list[str] = []
    cancelled = db.store.cancel("wf_cancel", tenant=TENANT, cancel_jobs=asked.extend)
    assert cancelled is not None and cancelled.status is WorkflowStatus.CANCELLED
    assert asked == [db.job_of("wf_cancel", "a")]
    assert statuses(db, "wf_cancel") == {"a": "cancelled", "b": "cancelled"}
    assert db.store.cancel("wf_cancel", tenant="someone-else", cancel_jobs=asked.extend) is None
    assert db.advancer().tick() == 0


def test_workflows_of_another_deployment_are_left_alone(db: Db) -> None:
    db.store.create(
        NewWorkflow(workflow_id="wf_other", tenant=TENANT, name="", scope="elsewhere", steps=(spec("a"),))
    )
    assert db.advancer().tick() == 0
    assert [w.workflow_id for w in db.store.list(TENANT)] == ["wf_other"]
