"""The Celery intake: ``tornado.submit`` messages become jobs once each; what is not a job is set aside."""

from __future__ import annotations

import json
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo
from celery import Celery

from tornado_core.adapters.celery.protocol import read_task
from tornado_core.errors import QueueUnavailable
from tornado_core.intake import SUBMIT_TASK, CeleryIntake, submission_row
from tornado_core.naming import intake_queue_spec, queue_name, queue_spec
from tornado_core.ports.queue import OutgoingMessage, QueueSpec
from tornado_core.producer.direct import JobSender
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.toolchain.testing import memory_services
from tornado_core.transactional.entries import EntryInvalid
from tornado_core.transactional.rows import RowSubmitter
from tornado_core.transactional.tenants import KnownTenants


@pytest.fixture
def services() -> Services:
    registry = TaskRegistry()
    registry.register_module(demo)
    built = memory_services(registry)
    for spec in registry:
        built.queue.ensure_queue(queue_spec(built.settings.queue_prefix, spec))
    built.tenants.create("acme", "hash-of-acme")
    return built


def sent_by_celery(*args: Any, **kwargs: Any) -> str:
    """The broker message of a plain Celery app's ``send_task("tornado.submit", ...)`` (kombu's memory)."""
    return sent_task(SUBMIT_TASK, list(args), kwargs)


def sent_task(name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    app = Celery("django_shop", broker="memory://", set_as_current=False)
    app.send_task(name, args=args, kwargs=kwargs, queue="intake-test")
    with app.connection() as connection:
        return json.dumps(connection.default_channel._get("intake-test"))


class Intake:
    """An intake on the services' memory queue, and what it queued."""

    def __init__(self, services: Services, sender: JobSender | None = None) -> None:
        self.services = services
        self.spec: QueueSpec = intake_queue_spec(services.settings.queue_prefix)
        services.queue.ensure_queue(self.spec)
        rows = RowSubmitter(
            submitter=Submitter.for_services(services), sender=sender or JobSender(services),
            jobs=services.jobs, tenants=KnownTenants(services.tenants), source="celery intake",
        )  # fmt: skip
        self.intake = CeleryIntake(queue=services.queue, spec=self.spec, rows=rows)

    def send(self, *raw: str) -> None:
        self.services.queue.send_batch(self.spec.name, [OutgoingMessage(text) for text in raw])

    def queued(self) -> list[dict[str, Any]]:
        spec = self.services.registry.get("demo.echo")
        queue = queue_name(self.services.settings.queue_prefix, spec.name, spec.version)
        received = self.services.queue.receive(queue, max_messages=100, wait_seconds=0, visibility_timeout=30)
        return [json.loads(m.body) for m in received]

    def left(self, name: str) -> int:
        return self.services.queue.depth(name).total


def test_send_task_of_tornado_submit_becomes_one_job_under_the_messages_id(services: Services) -> None:
    intake = Intake(services)
    raw = sent_by_celery("demo.echo", {"message": "oi"}, tenant="acme")
    intake.send(raw)
    report = intake.intake.intake_once(wait=0)
    assert (report.received, report.sent, report.refused) == (1, 1, 0)
    (job,) = intake.queued()
    message_id = read_task(raw).task_id
    assert job["job_id"] == services.job_ids.for_idempotency_key("acme", f"demo.echo\0celery:{message_id}")
    assert (job["tenant"], job["payload"]) == ("acme", {"message": "oi"})
    assert services.jobs.get(job["job_id"]) is not None
    assert intake.left(intake.spec.name) == 0  # acknowledged once the job was queued


def test_the_same_message_delivered_twice_is_one_job(services: Services) -> None:
    intake = Intake(services)
    raw = sent_by_celery(task="demo.echo", payload={"message": "twice"}, tenant="acme", idempotency_key="o-1")
    intake.send(raw, raw)
    report = intake.intake.intake_once(wait=0)
    assert (report.received, report.sent, report.existing) == (2, 1, 1)  # one row per job in one batch
    jobs = intake.queued()
    assert len({job["job_id"] for job in jobs}) == 1
    assert jobs[0]["job_id"] == services.job_ids.for_idempotency_key("acme", "demo.echo\0o-1")


def test_what_cannot_be_a_job_goes_to_the_intakes_dead_letter_queue_and_the_rest_is_queued(
    services: Services,
) -> None:
    intake = Intake(services)
    intake.send(
        sent_by_celery("demo.echo", {"message": "ok"}, tenant="acme"),
        sent_by_celery("demo.nope", {}, tenant="acme"),  # unknown task
        sent_by_celery("demo.echo", {"message": "x"}, tenant="nobody"),  # unknown tenant
        sent_by_celery("demo.echo", {"message": "x"}),  # no tenant
        sent_task("shop.send_invoice", [1], {}),  # another Celery task
        "not a celery message",
    )
    report = intake.intake.intake_once(wait=0)
    assert (report.received, report.sent, report.refused) == (6, 1, 5)
    assert [job["payload"] for job in intake.queued()] == [{"message": "ok"}]
    assert intake.left(intake.spec.dead_letter_name) == 5
    assert intake.left(intake.spec.name) == 0


class BrokenSender(JobSender):
    def send(self, jobs: Any) -> None:
        raise QueueUnavailable("the version's queue is down")


def test_a_backend_failure_acknowledges_nothing(services: Services) -> None:
    intake = Intake(services, sender=BrokenSender(services))
    intake.send(sent_by_celery("demo.echo", {"message": "later"}, tenant="acme"))
    with pytest.raises(QueueUnavailable):
        intake.intake.intake_once(wait=0)
    depth = services.queue.depth(intake.spec.name)
    assert (depth.in_flight, depth.visible) == (1, 0)  # back after its visibility timeout
    assert intake.left(intake.spec.dead_letter_name) == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (["demo.echo", {}, "extra"], {"tenant": "acme"}, "args"),
        (["demo.echo"], {"tenant": "acme", "task": "demo.echo"}, "task"),
        (["demo.echo"], {"tenant": "acme", "priority": 1}, "priority"),
        (["demo.echo"], {"tenant": "acme", "delay": "soon"}, "delay"),
        ([], {"tenant": "acme"}, "task"),
    ],
)
def test_each_bad_argument_is_named(args: list[Any], kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(EntryInvalid) as refused:
        submission_row(0, read_task(sent_task(SUBMIT_TASK, args, kwargs)))
    assert field in [problem["field"] for problem in refused.value.problems]


def test_a_submission_may_be_delayed_and_keyed() -> None:
    row = submission_row(
        3, read_task(sent_by_celery("demo.echo", tenant="acme", delay=30, idempotency_key="k"))
    )
    assert (row.row_id, row.task, row.tenant, row.payload, row.idempotency_key, row.delay) == (
        3, "demo.echo", "acme", {}, "k", 30.0,
    )  # fmt: skip
