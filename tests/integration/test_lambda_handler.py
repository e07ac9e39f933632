"""The Lambda handler, fed SQS-shaped batches in-process, against the real job store and the local SQS/S3.

The test plays Lambda's part: it receives from the version's queue (as the event source mapping's
poller does), hands the messages to the handler as Lambda's SQS event, and deletes the messages
the handler did not report failed (as Lambda does with ``ReportBatchItemFailures``). The function
itself never runs in moto (that would need Docker images of Lambda's runtimes).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tornado_core.adapters.aws import clients
from tornado_core.adapters.runtimes.iam import WorkerScope, lambda_policy, policy_allows
from tornado_core.bootstrap import build_services
from tornado_core.errors import ConfigError
from tornado_core.message import Envelope
from tornado_core.naming import dead_letter_name, queue_spec
from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.ports.queue import OutgoingMessage, ReceivedMessage
from tornado_core.producer.submission import Submitter
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.worker.lambda_entry import CONCURRENCY_VAR, TASK_VAR, VERSION_VAR, LambdaWorker

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"  # moto's


@pytest.fixture
def env(stack_env: dict[str, str]) -> dict[str, str]:
    """The function's environment: the stack's settings on SQS, queues of this test only."""
    prefix = f"lam{uuid.uuid4().hex[:6]}"
    return {
        **stack_env,
        "TORNADO_QUEUE": "sqs",
        "TORNADO_QUEUE_PREFIX": prefix,
        "TORNADO_CLAIM_CHECK_BYTES": "300",
    }


@pytest.fixture
def services(env: dict[str, str]) -> Iterator[Services]:
    """The test's own services (submitting jobs, reading the job store)."""
    built, close = build_services(Settings.load(env))
    yield built
    close()


@pytest.fixture
def workers(env: dict[str, str], services: Services) -> Iterator[Callable[..., LambdaWorker]]:
    """Lambda workers of a task's installed version, built from the environment as on Lambda."""
    made: list[LambdaWorker] = []

    def make(task: str, **extra: str) -> LambdaWorker:
        version = services.registry.get(task).version
        worker = LambdaWorker({**env, TASK_VAR: task, VERSION_VAR: version, CONCURRENCY_VAR: "4", **extra})
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.close()


class Poller:
    """Lambda's side of a task version's queue: submit, receive, hand over, delete what succeeded."""

    def __init__(self, services: Services, task: str) -> None:
        self.services = services
        self.tenant = f"acme-{uuid.uuid4().hex[:6]}"
        spec = services.registry.get(task)
        self.queue = queue_spec(services.settings.queue_prefix, spec)
        services.queue.ensure_queue(self.queue)  # as `tornado release deploy` does
        self.task = task
        self.arn = f"arn:aws:sqs:{services.settings.aws_region}:{ACCOUNT}:{self.queue.name}"

    def submit(self, payloads: list[dict[str, Any]]) -> list[str]:
        submitter = Submitter.for_services(self.services)
        prepared = [submitter.prepare(task=self.task, tenant=self.tenant, payload=p) for p in payloads]
        assert self.services.queue.send_batch(
            self.queue.name, [OutgoingMessage(p.body) for p in prepared]
        ) == [None] * len(prepared)
        return [p.envelope.job_id for p in prepared]

    def receive(
        self, count: int, *, queue: str | None = None, timeout: float = 30.0
    ) -> list[ReceivedMessage]:
        """Exactly ``count`` messages, received as the event source mapping would."""
        got: list[ReceivedMessage] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            assert time.monotonic() < deadline, f"{len(got)} of {count} messages arrived"
            got += self.services.queue.receive(
                queue or self.queue.name, max_messages=count - len(got), wait_seconds=1, visibility_timeout=60
            )
        return got

    def event(self, messages: list[ReceivedMessage]) -> dict[str, Any]:
        """The SQS event Lambda hands the function."""
        return {
            "Records": [
                {
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt,
                    "body": m.body,
                    "attributes": {"ApproximateReceiveCount": str(m.receive_count)},
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.services.settings.aws_region,
                }
                for m in messages
            ]
        }

    def deliver(self, worker: LambdaWorker, messages: list[ReceivedMessage]) -> set[str]:
        """Hand the batch over, delete the messages not reported failed; returns the failed ids."""
        answer = worker(self.event(messages))
        failed = {item["itemIdentifier"] for item in answer["batchItemFailures"]}
        done = [m.receipt for m in messages if m.message_id not in failed]
        if done:
            self.services.queue.delete(self.queue.name, done)
        return failed

    def job(self, job_id: str) -> JobRecord:
        record = self.services.jobs.get(job_id)
        assert record is not None, job_id
        return record


def job_of(message: ReceivedMessage) -> str:
    return Envelope.from_json(message.body).job_id


def test_one_failing_job_among_ten_is_the_only_one_reported_and_comes_back(
    services: Services, workers: Callable[..., LambdaWorker]
) -> None:
    poller, worker = Poller(services, "demo.flaky"), workers("demo.flaky")
    jobs = poller.submit([{"failures": 1 if n == 6 else 0} for n in range(10)])
    batch = poller.receive(10)
    failing = next(m for m in batch if job_of(m) == jobs[6])

    assert poller.deliver(worker, batch) == {failing.message_id}
    for job_id in jobs[:6] + jobs[7:]:
        record = poller.job(job_id)
        assert (record.status, record.result, record.attempts) == (JobStatus.SUCCEEDED, {"attempts": 1}, 1)
    failed = poller.job(jobs[6])
    assert failed.status is JobStatus.RETRYING
    assert (failed.error_type, failed.error_message) == ("RuntimeError", "planned failure 1 of 1")

    # Only the failed message is left; it reappears after its backoff and succeeds on attempt 2.
    (again,) = poller.receive(1)
    assert (again.message_id, again.receive_count) == (failing.message_id, 2)
    assert poller.deliver(worker, [again]) == set()
    assert poller.job(jobs[6]).result == {"attempts": 2}
    assert services.queue.depth(poller.queue.name).total == 0


def test_a_redelivered_job_that_already_succeeded_is_acknowledged_without_running(
    services: Services, workers: Callable[..., LambdaWorker]
) -> None:
    poller, worker = Poller(services, "demo.flaky"), workers("demo.flaky")
    (job_id,) = poller.submit([{"failures": 0}])
    first = poller.receive(1)
    assert worker(poller.event(first)) == {"batchItemFailures": []}
    # Lambda died before deleting it: the message comes back.
    services.queue.change_visibility(poller.queue.name, first[0].receipt, 0)
    second = poller.receive(1)
    assert second[0].receive_count == 2
    assert poller.deliver(worker, second) == set()
    record = poller.job(job_id)
    assert (record.status, record.result) == (JobStatus.SUCCEEDED, {"attempts": 1})  # not run again


def test_claim_checked_payloads_and_results_and_progress_go_through_the_runner(
    services: Services, workers: Callable[..., LambdaWorker]
) -> None:
    echo, sleep = Poller(services, "demo.echo"), Poller(services, "demo.sleep")
    message = "ipsum " * 200  # above the claim-check size: the payload and the result travel through S3
    (echo_job,) = echo.submit([{"message": message}])
    (sleep_job,) = sleep.submit([{"seconds": 0, "steps": 2}])
    assert echo.deliver(workers("demo.echo"), echo.receive(1)) == set()
    assert sleep.deliver(workers("demo.sleep"), sleep.receive(1)) == set()

    record = echo.job(echo_job)
    assert record.status is JobStatus.SUCCEEDED and record.result is None
    assert record.result_ref == f"results/demo.echo/{echo_job}.json"
    assert services.objects.get(record.result_ref) == f'{{"message":"{message}"}}'.encode()
    progress = sleep.job(sleep_job)
    assert (progress.progress, progress.progress_note) == (1.0, "step 2 of 2")


def test_a_poison_message_ends_in_the_dead_letter_queue_through_the_redrive_policy(
    services: Services, workers: Callable[..., LambdaWorker]
) -> None:
    poller, worker = Poller(services, "demo.fail"), workers("demo.fail")
    (job_id,) = poller.submit([{"reason": "poison"}])
    attempts = services.registry.get("demo.fail").retry.max_attempts
    for attempt in range(1, attempts + 1):
        batch = poller.receive(1)
        assert batch[0].receive_count == attempt
        assert poller.deliver(worker, batch) == {batch[0].message_id}
    assert poller.job(job_id).status is JobStatus.DEAD
    # The next receive finds its receives spent: the redrive policy moves it to the DLQ instead.
    source = poller.queue.name
    assert services.queue.receive(source, max_messages=1, wait_seconds=1, visibility_timeout=60) == []
    (dead,) = poller.receive(1, queue=dead_letter_name(poller.queue.name))
    assert job_of(dead) == job_id


def test_bad_configuration_is_a_clear_error_at_the_first_batch(
    env: dict[str, str], services: Services, workers: Callable[..., LambdaWorker]
) -> None:
    poller = Poller(services, "demo.flaky")
    event = poller.event([ReceivedMessage(message_id="m1", body="{}", receipt="r1", receive_count=1)])
    echo_queue = queue_spec(services.settings.queue_prefix, services.registry.get("demo.echo")).name
    broken: list[tuple[LambdaWorker, str]] = [
        (LambdaWorker(env), f"{TASK_VAR} and {VERSION_VAR} must name the task version"),
        (workers("demo.flaky", TORNADO_QUEUE="postgres"), "TORNADO_QUEUE must be 'sqs', not 'postgres'"),
        (workers("demo.flaky", **{VERSION_VAR: "9.9.9"}), "the function's code has no demo.flaky 9.9.9"),
        (workers("demo.flaky", **{CONCURRENCY_VAR: "lots"}), f"{CONCURRENCY_VAR} must be a whole number"),
        (workers("demo.echo"), f"this function serves the queue {echo_queue}, but the batch came from"),
    ]
    for worker, message in broken:
        with pytest.raises(ConfigError, match=message):
            worker(event)
    with pytest.raises(ConfigError, match="not an SQS event"):
        workers("demo.flaky")({"Records": []})


#: What each batch of the audit below makes the handler do, at least.
AUDITED = {
    "demo.echo": ([{"message": "x" * 400}], {"s3:GetObject", "s3:PutObject"}),  # claim-checked both ways
    "demo.fail": (
        [{"retryable": True}, {"retryable": False}],
        {"sqs:ChangeMessageVisibility", "sqs:SendMessage"},
    ),
}


@pytest.mark.parametrize("task", sorted(AUDITED))
def test_the_least_privilege_policy_allows_every_call_the_handler_makes(
    task: str, services: Services, workers: Callable[..., LambdaWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    made = clients.make_client

    def recording(service: str, **kwargs: Any) -> Any:
        client = made(service, **kwargs)
        client.meta.events.register("before-parameter-build.*.*", _recorder(calls, services.settings))
        return client

    monkeypatch.setattr(clients, "make_client", recording)
    payloads, expected = AUDITED[task]
    poller = Poller(services, task)
    poller.submit(payloads)
    poller.deliver(workers(task), poller.receive(len(payloads)))

    settings = services.settings
    scope = WorkerScope(
        region=settings.aws_region, account=ACCOUNT, queue_prefix=settings.queue_prefix,
        bucket=settings.bucket, task=task, version=services.registry.get(task).version,
    )  # fmt: skip
    policy = lambda_policy(scope, function_name="f", vpc=False)
    assert expected <= {action for action, _ in calls}
    assert [call for call in calls if not policy_allows(policy, *call)] == []


def _recorder(calls: list[tuple[str, str]], settings: Settings) -> Callable[..., None]:
    """Records (IAM action, resource ARN) of each call a client makes."""

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        action = f"{service}:{model.name.removesuffix('Batch')}"
        if service == "sqs":
            name = params.get("QueueName") or str(params.get("QueueUrl", "")).rsplit("/", 1)[-1]
            calls.append((action, f"arn:aws:sqs:{settings.aws_region}:{ACCOUNT}:{name}"))
        elif service == "s3":
            calls.append((action, f"arn:aws:s3:::{params.get('Bucket')}/{params.get('Key', '')}"))
        else:
            calls.append((action, "*"))

    return record
