"""A batch of ordinary jobs is prepared together, exactly as one job at a time would make them;
anything unusual in a batch sends every item back through the one-at-a-time path, which says why.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from tornado_core.message import Envelope
from tornado_core.ports.routes import RouteTable
from tornado_core.producer.submission import PreparedJob, Submitter
from tornado_core.routing import Router
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.toolchain.testing import memory_services
from tornado_core.unique import UniqueJobs
from tornado_core.web.requests import ordinary_items

TENANT = "acme"


class Note(BaseModel):  # extra fields ignored: a 2.0.0 payload is valid here too
    text: str


class NoteV2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    lines: int


class Invoice(BaseModel):
    total: int
    items: list[int]

    def payload_problems(self) -> list[dict[str, str]]:
        return [] if sum(self.items) == self.total else [{"field": "total", "message": "must add up"}]


def spec(name: str, model: type[BaseModel], version: str = "1.0.0", **options: Any) -> TaskSpec:
    return TaskSpec(name=name, version=version, payload_model=model, handler=lambda ctx, p: None, **options)


TASKS = [
    spec("notes.add", Note),
    spec("notes.add", NoteV2, version="2.0.0"),
    spec("notes.restock", Note, internal=True),
    spec("notes.once", Note, unique=UniqueJobs(("text",))),
    spec("billing.invoice", Invoice),
]


def canary(task: str, tenant: str, job_id: str) -> str:
    """Half the jobs of notes.add (by job id) to 2.0.0, as a canary route does."""
    return "2.0.0" if task == "notes.add" and job_id[-1] in "abcdefghijklmnop" else "1.0.0"


@pytest.fixture
def services() -> Services:
    return memory_services(TASKS)


def stable(job: PreparedJob) -> tuple[Any, ...]:
    """What must not depend on the path: everything but the new id and the clock."""
    e = job.envelope
    body = json.loads(job.body)
    body.pop("job_id"), body.pop("submitted_at")
    return (
        e.task,
        e.version,
        e.tenant,
        e.payload,
        e.payload_ref,
        e.traceparent,
        job.queue,
        job.unique_key,
        body,
    )


def one_at_a_time(submitter: Submitter, items: list[dict[str, Any]], **options: Any) -> list[PreparedJob]:
    return [
        submitter.prepare(
            task=i["task"],
            tenant=TENANT,
            payload=i["payload"],
            idempotency_key=i.get("idempotency_key"),
            **options,
        )
        for i in items
    ]


def together(submitter: Submitter, items: list[dict[str, Any]], **options: Any) -> list[PreparedJob] | None:
    """The batch's jobs in the order they came, each as its message body says it."""
    jobs = ordinary_items(items)
    assert jobs is not None
    batch = submitter.prepare_many(tenant=TENANT, jobs=jobs, **options)
    if batch is None:
        return None
    assert batch.tenant == TENANT and batch.size == len(items)
    made: dict[int, PreparedJob] = {}
    for group in batch.groups:
        for position, job_id, body, key in zip(
            group.positions, group.job_ids, group.bodies, group.keys, strict=True
        ):
            envelope = Envelope.from_json(body)
            assert (envelope.job_id, envelope.task, envelope.version) == (job_id, group.task, group.version)
            assert envelope.submitted_at == batch.submitted_at and key == items[position].get(
                "idempotency_key"
            )
            made[position] = PreparedJob(envelope=envelope, queue=group.queue, body=body)
    assert sorted(made) == list(range(len(items)))
    return [made[position] for position in range(len(items))]


def test_ordinary_jobs_come_out_as_one_at_a_time_would_make_them(services: Services) -> None:
    submitter = Submitter.for_services(services)
    items = [{"task": "notes.add", "payload": {"text": f"n{i}", "lines": i}} for i in range(50)]
    items += [{"task": "notes.add", "payload": {"text": "keyed", "lines": 1}, "idempotency_key": "k-1"}]
    made = together(submitter, items, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert made is not None
    expected = one_at_a_time(submitter, items, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert [stable(job) for job in made] == [stable(job) for job in expected]
    assert made[-1].envelope.job_id == expected[-1].envelope.job_id  # same key, same id
    ids = [job.envelope.job_id for job in made]
    assert len(set(ids)) == len(ids) and all(services.job_ids.belongs_to(i, TENANT) for i in ids)
    assert all(job.envelope.to_json() == job.body for job in made)  # byte for byte as prepare writes it


def test_each_job_is_routed_by_its_own_id_and_validated_against_its_version(services: Services) -> None:
    submitter = Submitter.for_services(services, resolve_version=canary)
    both = [{"task": "notes.add", "payload": {"text": f"n{i}", "lines": i}} for i in range(40)]
    made = together(submitter, both)
    assert made is not None
    assert {job.envelope.version for job in made} == {"1.0.0", "2.0.0"}
    for job in made:
        assert job.envelope.version == canary("notes.add", TENANT, job.envelope.job_id)
        assert job.queue.endswith("v" + job.envelope.version.replace(".", "_"))
    # Valid for 1.0.0 only (2.0.0 needs lines): a job routed to 2.0.0 makes the batch go one at a time.
    v1_only = [{"task": "notes.add", "payload": {"text": f"n{i}"}} for i in range(40)]
    assert together(submitter, v1_only) is None


@pytest.mark.parametrize(
    "route",
    [
        RouteTable(task="notes.add", current="1.0.0"),
        RouteTable(task="notes.add", current="1.0.0", ramping="2.0.0", ramp_percent=50),
        RouteTable(
            task="notes.add", current="1.0.0", ramping="2.0.0", ramp_percent=50, pins={TENANT: "2.0.0"}
        ),
    ],
)
def test_a_batch_through_the_router_goes_where_each_job_alone_would(
    services: Services, route: RouteTable
) -> None:
    router = Router({"notes.add": route}.get, lambda task: "1.0.0")
    submitter = Submitter.for_services(services, resolve_version=router)
    made = together(
        submitter, [{"task": "notes.add", "payload": {"text": f"n{i}", "lines": i}} for i in range(60)]
    )
    assert made is not None
    for job in made:
        assert job.envelope.version == router("notes.add", TENANT, job.envelope.job_id)
    assert len({job.envelope.version for job in made}) == (
        2 if router.fixed_version("notes.add", TENANT) is None else 1
    )


UNUSUAL = {
    "an invalid payload": [{"task": "notes.add", "payload": {"text": 3, "lines": 1}}],
    "an unknown field in a payload": [
        {"task": "notes.add", "payload": {"text": "a", "lines": 1, "colour": "red"}}
    ],
    "an unknown task": [{"task": "no.such", "payload": {}}],
    "an internal task": [{"task": "notes.restock", "payload": {"text": "a"}}],
    "a unique task": [{"task": "notes.once", "payload": {"text": "a"}}],
    "rules beyond the schema": [{"task": "billing.invoice", "payload": {"total": 3, "items": [1, 2]}}],
    "a null in a payload": [{"task": "notes.add", "payload": {"text": None, "lines": 1}}],
    "an integer beyond 64 bits": [{"task": "notes.add", "payload": {"text": "a", "lines": 2**70}}],
    "a payload that needs a claim check": [
        {"task": "notes.add", "payload": {"text": "x" * 300_000, "lines": 1}}
    ],
}


@pytest.mark.parametrize("unusual", UNUSUAL.values(), ids=UNUSUAL.keys())
def test_one_unusual_job_sends_the_whole_batch_one_at_a_time(
    services: Services, unusual: list[dict[str, Any]]
) -> None:
    submitter = Submitter.for_services(services)
    ordinary = [{"task": "notes.add", "payload": {"text": f"n{i}", "lines": i}} for i in range(5)]
    assert together(submitter, ordinary) is not None
    assert together(submitter, ordinary + unusual + ordinary) is None


ITEMS_NOT_ORDINARY = {
    "not an object": [1],
    "a delay": [{"task": "notes.add", "payload": {"text": "a"}, "delay": 5}],
    "a run_at": [{"task": "notes.add", "payload": {"text": "a"}, "run_at": "2030-01-01T00:00:00Z"}],
    "an unknown field": [{"task": "notes.add", "payload": {"text": "a"}, "colour": "red"}],
    "no payload": [{"task": "notes.add"}],
    "a payload that is a list": [{"task": "notes.add", "payload": []}],
    "an empty task": [{"task": "", "payload": {}}],
    "a key too long": [{"task": "notes.add", "payload": {}, "idempotency_key": "k" * 201}],
    "a key with NUL": [{"task": "notes.add", "payload": {}, "idempotency_key": "a\0b"}],
}


@pytest.mark.parametrize("items", ITEMS_NOT_ORDINARY.values(), ids=ITEMS_NOT_ORDINARY.keys())
def test_an_item_the_request_checks_would_refuse_or_that_waits_is_not_ordinary(items: list[Any]) -> None:
    ordinary = [{"task": "notes.add", "payload": {"text": "a"}, "idempotency_key": "fine"}]
    assert ordinary_items(ordinary) == [("notes.add", {"text": "a"}, "fine")]
    assert ordinary_items(ordinary + items) is None
