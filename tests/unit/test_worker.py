"""The worker loop against in-memory adapters: fast checks of its decisions."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import pytest
import tornado_tasks.demo.handlers as demo
from pydantic import BaseModel

from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.adapters.memory.stores import MemoryQueue
from tornado_core.errors import NonRetryable, StoreUnavailable
from tornado_core.naming import dead_letter_name, queue_spec
from tornado_core.ports.jobs import ClaimOutcome, JobStatus, NewJob, Success
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.task import TaskSpec, task
from tornado_core.task_context import TaskContext
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.acks import Acknowledger
from tornado_core.worker.loop import Worker, WorkerOptions
from tornado_core.worker.runner import Delivery, JobRunner, Outcome


@pytest.fixture
def services() -> Services:
    registry = TaskRegistry()
    registry.register_module(demo)
    return memory_services(registry)


def submit(services: Services, task: str, payload: dict[str, object]) -> str:
    return queue_job(services, task, payload)[0]


def queue_job(services: Services, task: str, payload: dict[str, object]) -> tuple[str, str]:
    """Queue a job as the API does; returns its id and its message body."""
    submitter = Submitter(
        registry=services.registry,
        job_ids=services.job_ids,
        objects=services.objects,
        queue_prefix=services.settings.queue_prefix,
        claim_check_bytes=services.settings.claim_check_bytes,
    )
    prepared = submitter.prepare(task=task, tenant="acme", payload=payload)
    services.queue.ensure_queue(queue_spec(services.settings.queue_prefix, services.registry.get(task)))
    assert services.queue.send_batch(prepared.queue, [OutgoingMessage(prepared.body)]) == [None]
    services.jobs.record_queued([prepared.as_new_job()])
    return prepared.envelope.job_id, prepared.body


@pytest.fixture
def run_worker(services: Services) -> Iterator[Callable[[str], Worker]]:
    started: list[tuple[Worker, threading.Thread]] = []

    def start(task: str, concurrency: int = 2, on_outcome: Callable[[str], None] | None = None) -> Worker:
        worker = Worker(
            services,
            services.registry.get(task),
            WorkerOptions(concurrency=concurrency, poll_wait=0.1, grace_period=5),
            on_outcome=on_outcome,
        )
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


def wait_for_status(services: Services, job_id: str, status: JobStatus, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = services.jobs.get(job_id)
        if record is not None and record.status is status:
            return
        time.sleep(0.02)
    record = services.jobs.get(job_id)
    raise AssertionError(f"job {job_id} is {record.status if record else None}, not {status}")


def test_echo_succeeds_with_its_result(services: Services, run_worker: Callable[[str], Worker]) -> None:
    job_id = submit(services, "demo.echo", {"message": "olá"})
    run_worker("demo.echo")
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.result == {"message": "olá"}
    assert record.attempts == 1


def test_flaky_job_retries_then_succeeds(services: Services, run_worker: Callable[[str], Worker]) -> None:
    job_id = submit(services, "demo.flaky", {"failures": 2})
    run_worker("demo.flaky")
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.result == {"attempts": 3}


def test_non_retryable_goes_to_the_dlq_at_once(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    job_id = submit(services, "demo.fail", {"retryable": False})
    worker = run_worker("demo.fail")
    wait_for_status(services, job_id, JobStatus.DEAD)
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.attempts == 1
    assert record.error_type == "NonRetryable"
    deadline = time.monotonic() + 5
    while services.queue.depth(dead_letter_name(worker.queue_name)).total != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_always_failing_job_is_redriven_after_max_receives(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    job_id = submit(services, "demo.fail", {"reason": "boom"})
    worker = run_worker("demo.fail")
    dlq = dead_letter_name(worker.queue_name)
    deadline = time.monotonic() + 10
    while services.queue.depth(dlq).total != 1:
        assert time.monotonic() < deadline, "never reached the DLQ"
        time.sleep(0.02)
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.status is JobStatus.DEAD
    assert record.attempts == services.registry.get("demo.fail").retry.max_attempts
    assert services.queue.depth(worker.queue_name).total == 0


def test_stop_lets_a_running_job_finish(services: Services, run_worker: Callable[[str], Worker]) -> None:
    job_id = submit(services, "demo.sleep", {"seconds": 0.6, "steps": 3})
    worker = run_worker("demo.sleep")
    wait_for_status(services, job_id, JobStatus.RUNNING)
    worker.stop()
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    deadline = time.monotonic() + 5
    while services.queue.depth(worker.queue_name).total:  # acknowledged by the last batch of deletes
        assert time.monotonic() < deadline, "the finished job's message was never deleted"
        time.sleep(0.02)


def test_prefetched_messages_are_made_visible_again_at_once_on_stop(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    long_job = submit(services, "demo.sleep", {"seconds": 1.0, "steps": 5})
    waiting = [submit(services, "demo.sleep", {"seconds": 0.1, "steps": 1}) for _ in range(3)]
    worker = run_worker("demo.sleep", concurrency=1)
    wait_for_status(services, long_job, JobStatus.RUNNING)
    depth = services.queue.depth(worker.queue_name)
    assert (depth.in_flight, depth.visible) == (2, 2)  # one running, one prefetched (= concurrency)
    worker.stop()
    deadline = time.monotonic() + 0.5
    while services.queue.depth(worker.queue_name).visible != 3:
        assert time.monotonic() < deadline, "the prefetched message was not returned at once"
        time.sleep(0.01)
    wait_for_status(services, long_job, JobStatus.SUCCEEDED)
    records = [services.jobs.get(job_id) for job_id in waiting]
    assert [r.attempts if r else None for r in records] == [0, 0, 0]  # none of them started
    # The prefetched one had been claimed with its receive: the claim was given back, so it is
    # queued with no lease and another worker may run it at once.
    assert [r.status if r else None for r in records] == [JobStatus.QUEUED] * 3
    assert all(
        services.jobs.claim(NewJob(job_id=r.job_id, tenant=r.tenant, task=r.task, version=r.version,
                                   submitted_at=0), attempt=1, lease_seconds=30, worker="next/m")
        is ClaimOutcome.CLAIMED
        for r in records if r
    )  # fmt: skip


def test_large_payload_and_result_travel_through_the_object_store(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    big = "x" * (services.settings.claim_check_bytes + 1)
    job_id = submit(services, "demo.echo", {"message": big})
    assert services.objects.exists(f"payloads/demo.echo/{job_id}.json")
    run_worker("demo.echo")
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.result is None
    assert record.result_ref == f"results/demo.echo/{job_id}.json"
    assert json.loads(services.objects.get(record.result_ref)) == {"message": big}


class OutageJobStore(MemoryJobStore):
    """A job store that can be taken down, like PostgreSQL during a restart."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.pings = 0

    def claim(self, job: NewJob, *, attempt: int, lease_seconds: float, worker: str) -> ClaimOutcome:
        if self.down:
            raise StoreUnavailable("job store is restarting")
        return super().claim(job, attempt=attempt, lease_seconds=lease_seconds, worker=worker)

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise StoreUnavailable("job store is restarting")


def test_a_job_store_outage_pauses_polling_instead_of_burning_delivery_attempts(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tornado_core.worker.runner.STORE_DOWN_DELAY", 0.2)  # deferred messages reappear fast
    store = OutageJobStore()
    store.down = True
    services = dataclasses.replace(services, jobs=store)
    job_id = submit(services, "demo.echo", {"message": "during the outage"})
    worker = Worker(services, services.registry.get("demo.echo"), WorkerOptions(concurrency=2, poll_wait=0.1))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while store.pings < 2:  # polling paused for a second at least: the message reappeared many times
            assert time.monotonic() < deadline, "the worker never paused polling"
            time.sleep(0.02)
        queue = cast(MemoryQueue, services.queue)
        assert queue.receive_counts(worker.queue_name) == [1]  # received once, then polling paused
        store.down = False
        deadline = time.monotonic() + 15
        while (store.get(job_id) or _unset()).status is not JobStatus.SUCCEEDED:
            assert time.monotonic() < deadline, "the job did not run after the store came back"
            time.sleep(0.05)
    finally:
        worker.stop()
        thread.join(timeout=10)


def _unset() -> Any:
    return type("Unset", (), {"status": None})()


# --- one parse per delivery, acknowledgements through a sink, outcome strings ----------------------


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each message body was parsed as JSON (``Envelope.from_json`` parses with ``json.loads``)."""
    counts: Counter[str] = Counter()
    original = json.loads

    def counting(text: Any, **kwargs: Any) -> Any:
        if isinstance(text, str):
            counts[text] += 1
        return original(text, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    return counts


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_each_delivery_parses_its_body_once(
    services: Services, run_worker: Callable[[str], Worker], parses: Counter[str]
) -> None:
    bodies = dict(queue_job(services, "demo.echo", {"message": f"m{i}"}) for i in range(3))
    echoes = list(bodies)
    failing, failing_body = queue_job(services, "demo.fail", {"reason": "redelivered until the DLQ"})
    bodies[failing] = failing_body
    run_worker("demo.echo")
    worker = run_worker("demo.fail")
    for job_id in echoes:
        wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    wait_until(lambda: services.queue.depth(dead_letter_name(worker.queue_name)).total == 1, "no DLQ")
    assert [parses[bodies[job_id]] for job_id in echoes] == [1, 1, 1]
    record = services.jobs.get(failing)
    assert record is not None
    assert record.attempts == 3
    assert parses[bodies[failing]] == record.attempts  # once per delivery, never twice for one


def test_heartbeats_take_the_job_id_from_the_parsed_envelope(
    services: Services,
    run_worker: Callable[..., Worker],
    parses: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extended = threading.Event()
    extend_lease = services.jobs.extend_lease

    def spy(job_id: str, *, lease_seconds: float) -> None:
        extend_lease(job_id, lease_seconds=lease_seconds)
        extended.set()

    monkeypatch.setattr(services.jobs, "extend_lease", spy)

    def wait_for_a_heartbeat(ctx: TaskContext, payload: Any) -> dict[str, str]:
        if not extended.wait(timeout=10):
            raise NonRetryable("no heartbeat extended the lease")
        return {"job": ctx.job_id}

    spec = TaskSpec(
        name="probe.heartbeat",
        version="1.0.0",
        payload_model=demo.EchoPayload,
        handler=wait_for_a_heartbeat,
        visibility_timeout=0.6,
    )
    services.registry.register(spec)
    job_id, body = queue_job(services, "probe.heartbeat", {"message": "hold on"})
    run_worker("probe.heartbeat", concurrency=1)
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    assert extended.is_set()
    assert parses[body] == 1  # the heartbeat read the job id without parsing the body again


def test_an_unreadable_body_is_parsed_once_and_dead_lettered(
    services: Services, run_worker: Callable[..., Worker], parses: Counter[str]
) -> None:
    queue = queue_spec(services.settings.queue_prefix, services.registry.get("demo.echo"))
    services.queue.ensure_queue(queue)
    body = json.dumps({"job_id": "j-1", "schema": 99})  # a schema this version does not read
    services.queue.send_batch(queue.name, [OutgoingMessage(body)])
    outcomes: list[str] = []
    run_worker("demo.echo", concurrency=1, on_outcome=outcomes.append)
    wait_until(lambda: services.queue.depth(queue.dead_letter_name).total == 1, "not dead-lettered")
    wait_until(lambda: outcomes == [Outcome.DEAD], "no outcome reported")
    assert services.queue.depth(queue.name).total == 0
    assert parses[body] == 1


class RecordingSink:
    """An acknowledgement sink that only writes down what it was handed."""

    def __init__(self) -> None:
        self.acked: list[tuple[str, str]] = []

    def ack(self, queue: str, receipt: str) -> None:
        self.acked.append((queue, receipt))


def receive_one(services: Services, task: str) -> Delivery:
    queue = queue_spec(services.settings.queue_prefix, services.registry.get(task)).name
    [message] = services.queue.receive(queue, max_messages=1, wait_seconds=0, visibility_timeout=30)
    return Delivery.received(queue, message, started=time.monotonic())


def test_the_runner_acknowledges_through_the_sink_it_is_given(services: Services) -> None:
    job_id = submit(services, "demo.echo", {"message": "ack me"})
    delivery = receive_one(services, "demo.echo")
    sink = RecordingSink()
    runner = JobRunner(services, services.registry.get("demo.echo"), worker_id="w", acks=sink)
    assert runner.run(delivery) is Outcome.SUCCEEDED
    assert sink.acked == [(delivery.queue, delivery.message.receipt)]
    assert services.queue.depth(delivery.queue).in_flight == 1  # only the sink decides when it is deleted
    record = services.jobs.get(job_id)
    assert record is not None
    assert record.status is JobStatus.SUCCEEDED
    assert runner.run(delivery) is Outcome.SKIPPED_DONE  # a duplicate of a finished job: acknowledged too
    assert sink.acked == [(delivery.queue, delivery.message.receipt)] * 2


def test_without_a_sink_the_runner_deletes_at_once(services: Services) -> None:
    submit(services, "demo.echo", {"message": "delete me"})
    delivery = receive_one(services, "demo.echo")
    runner = JobRunner(services, services.registry.get("demo.echo"), worker_id="w")
    assert runner.run(delivery) is Outcome.SUCCEEDED
    assert services.queue.depth(delivery.queue).total == 0


def test_the_acknowledger_thread_runs_from_start_to_close(services: Services) -> None:
    submit(services, "demo.echo", {"message": "batched"})
    delivery = receive_one(services, "demo.echo")
    before = {thread.ident for thread in threading.enumerate()}
    acks = Acknowledger(services.queue)
    Worker(services, services.registry.get("demo.echo"), WorkerOptions(concurrency=2))
    assert {thread.ident for thread in threading.enumerate()} <= before  # constructing starts nothing
    acks.start()
    acks.ack(delivery.queue, delivery.message.receipt)
    acks.close()
    assert services.queue.depth(delivery.queue).total == 0


def test_outcomes_are_the_same_strings_as_before() -> None:
    assert {outcome.name: str(outcome) for outcome in Outcome} == {
        "SUCCEEDED": "succeeded",
        "SKIPPED_DONE": "skipped_already_done",
        "DEFERRED_BUSY": "deferred_busy",
        "DEFERRED_STORE_DOWN": "deferred_store_down",
        "RETRYING": "retrying",
        "DEAD": "dead",
        "CANCELLED": "cancelled",
    }
    assert all(isinstance(outcome, str) for outcome in Outcome)
    assert Outcome.DEAD == "dead"
    assert f"{Outcome.DEFERRED_BUSY}" == "deferred_busy"
    assert "%s" % Outcome.RETRYING == "retrying"  # noqa: UP031 - the logs format outcomes this way
    assert json.dumps({"outcome": Outcome.SUCCEEDED}) == '{"outcome": "succeeded"}'


class SlowCommitStore(MemoryJobStore):
    """Its success commits wait for a gate: a job store under a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.committing = threading.Event()
        self.commits: list[list[str]] = []

    def record_successes(self, successes: Sequence[Success]) -> None:
        self.commits.append([s.job_id for s in successes])
        self.committing.set()
        assert self.gate.wait(30)
        super().record_successes(successes)


class Numbered(BaseModel):
    n: int


def test_a_job_thread_runs_the_next_job_while_the_last_success_is_committed(services: Services) -> None:
    ran: list[int] = []

    @task(name="test.numbered", payload=Numbered, version="1.0.0")
    def numbered(ctx: TaskContext, payload: Numbered) -> dict[str, int]:
        ran.append(payload.n)
        return {"n": payload.n}

    services.registry.register(numbered)
    store = SlowCommitStore()
    services = dataclasses.replace(services, jobs=store)
    first = submit(services, "test.numbered", {"n": 1})
    worker = Worker(services, numbered, WorkerOptions(concurrency=1, poll_wait=0.1))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert store.committing.wait(10)
        second = submit(services, "test.numbered", {"n": 2})
        # The only job thread ran the second job although the first one's success is not durable yet.
        deadline = time.monotonic() + 5
        while ran != [1, 2]:
            assert time.monotonic() < deadline, f"ran {ran} while the first success was being committed"
            time.sleep(0.01)
        assert services.jobs.get(first).status is JobStatus.RUNNING  # type: ignore[union-attr]
        # Neither message is acknowledged before its success is durable: both are still in flight.
        assert services.queue.depth(worker.queue_name).in_flight == 2
        store.gate.set()
        wait_for_status(services, first, JobStatus.SUCCEEDED)
        wait_for_status(services, second, JobStatus.SUCCEEDED)
        deadline = time.monotonic() + 5
        while services.queue.depth(worker.queue_name).total:
            assert time.monotonic() < deadline, "the messages were never deleted"
            time.sleep(0.02)
        assert store.commits == [[first], [second]]
    finally:
        store.gate.set()
        worker.stop()
        thread.join(10)


def test_a_success_that_cannot_be_committed_lets_its_message_reappear(services: Services) -> None:
    store = SlowCommitStore()
    store.gate.set()
    services = dataclasses.replace(services, jobs=store)
    outcomes: list[str] = []
    job_id = submit(services, "demo.sleep", {"seconds": 0.01, "steps": 1})  # hidden 3 s per delivery
    fail = {"left": 1}
    original = store.record_successes

    def failing_once(successes: Sequence[Success]) -> None:
        if fail["left"]:
            fail["left"] -= 1
            raise StoreUnavailable("PostgreSQL is restarting")
        original(successes)

    store.record_successes = failing_once  # type: ignore[method-assign]
    options = WorkerOptions(concurrency=1, poll_wait=0.1)
    spec = services.registry.get("demo.sleep")
    worker = Worker(services, spec, options, on_outcome=outcomes.append)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        # The failed commit acknowledged nothing: the message came back after its visibility timeout
        # and the job ran again, this time to a durable success.
        wait_for_status(services, job_id, JobStatus.SUCCEEDED, timeout=spec.visibility_timeout + 15)
        assert outcomes == [Outcome.SUCCEEDED]
        assert store.get(job_id).attempts == 2  # type: ignore[union-attr]
    finally:
        worker.stop()
        thread.join(10)


def test_a_running_job_stops_at_a_progress_report_once_cancelled(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    # demo.sleep: a 3 s visibility timeout, so a heartbeat (and its answer) every second.
    job_id = submit(services, "demo.sleep", {"seconds": 60, "steps": 600})
    worker = run_worker("demo.sleep")
    wait_for_status(services, job_id, JobStatus.RUNNING)
    outcome, status = services.jobs.request_cancel(job_id, tenant="acme")
    assert (str(outcome), status) == ("requested", JobStatus.RUNNING)
    wait_for_status(services, job_id, JobStatus.CANCELLED)
    record = services.jobs.get(job_id)
    assert record is not None and record.error_type == "JobCancelled" and record.progress < 1
    deadline = time.monotonic() + 5
    while services.queue.depth(worker.queue_name).total:  # dropped: no retry, no dead letter
        assert time.monotonic() < deadline, "the cancelled job's message was never deleted"
        time.sleep(0.02)
    assert services.queue.depth(dead_letter_name(worker.queue_name)).total == 0


def test_a_cancelled_queued_job_is_acknowledged_without_running(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    cancelled = submit(services, "demo.echo", {"message": "never"})
    assert str(services.jobs.request_cancel(cancelled, tenant="acme")[0]) == "cancelled"
    kept = submit(services, "demo.echo", {"message": "kept"})
    worker = run_worker("demo.echo")
    wait_for_status(services, kept, JobStatus.SUCCEEDED)
    deadline = time.monotonic() + 5
    while services.queue.depth(worker.queue_name).total:
        assert time.monotonic() < deadline, "the cancelled job's message was never dropped"
        time.sleep(0.02)
    record = services.jobs.get(cancelled)
    assert record is not None and record.status is JobStatus.CANCELLED and record.attempts == 0


def test_two_messages_of_one_job_in_one_receive_run_it_once_and_both_go_at_once(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    # A re-submitted idempotency key queues a second message of the same job; one receive brings both.
    job_id, body = queue_job(services, "demo.echo", {"message": "once"})
    queue = queue_spec(services.settings.queue_prefix, services.registry.get("demo.echo")).name
    assert services.queue.send_batch(queue, [OutgoingMessage(body)]) == [None]
    outcomes: list[str] = []
    run_worker("demo.echo", on_outcome=outcomes.append)
    wait_for_status(services, job_id, JobStatus.SUCCEEDED)
    deadline = time.monotonic() + 5  # far below demo.echo's 60 s visibility timeout
    while services.queue.depth(queue).total:
        assert time.monotonic() < deadline, f"a copy waits out its visibility timeout: {outcomes}"
        time.sleep(0.02)
    assert sorted(outcomes) == sorted([Outcome.SUCCEEDED, Outcome.SKIPPED_DONE])
    record = services.jobs.get(job_id)
    assert record is not None and record.attempts == 1
