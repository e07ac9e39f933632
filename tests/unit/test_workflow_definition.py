"""Workflow definitions: shape and DAG checks, task and payload checks, result references, planning,
the advancer's decisions and the Python declaration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tornado_core.errors import StepInputMissing, WorkflowInvalid
from tornado_core.ports.workflows import Step, StepStatus, Workflow, WorkflowStatus
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.toolchain.testing import memory_services
from tornado_core.workflows.advancer import WorkflowAdvancer
from tornado_core.workflows.declare import Workflow as Declared
from tornado_core.workflows.declare import chain, fan_out, result_of
from tornado_core.workflows.definition import check_tasks, parse_workflow
from tornado_core.workflows.planning import outcome, plan
from tornado_core.workflows.references import substitute


def fields(body: Any) -> list[str]:
    with pytest.raises(WorkflowInvalid) as caught:
        parse_workflow(body)
    return [p["field"] for p in caught.value.problems]


def step(
    name: str,
    task: str = "demo.echo",
    payload: dict[str, Any] | None = None,
    after: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "task": task,
        "payload": payload or {"message": name},
        "after": list(after),
        **extra,
    }


def test_a_well_formed_dag_is_read_in_declaration_order() -> None:
    found = parse_workflow({"name": "nfe", "steps": [step("emit"), step("danfe", after=("emit",))]})
    assert found.name == "nfe"
    assert [(s.name, s.after) for s in found.steps] == [("emit", ()), ("danfe", ("emit",))]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], ["(body)"]),
        ({}, ["steps"]),
        ({"steps": []}, ["steps"]),
        ({"steps": [step(str(n)) for n in range(101)]}, ["steps"]),
        ({"steps": [step("a")], "extra": 1, "name": 5}, ["extra", "name"]),
        ({"steps": [step("a"), step("a")]}, ["steps[1].name"]),
        ({"steps": [step("-bad")]}, ["steps[0].name"]),
        ({"steps": [step("a", task="")]}, ["steps[0].task"]),
        ({"steps": [step("a", oops=True)]}, ["steps[0].oops"]),
        ({"steps": ["a"]}, ["steps[0]"]),
        ({"steps": [{"name": "a", "task": "demo.echo", "payload": []}]}, ["steps[0].payload"]),
        (
            {"steps": [step("a", after=("b",)), step("b")]},
            ["steps[0].after[0]"],
        ),  # no forward edges: no cycle
        ({"steps": [step("a", after=("a",))]}, ["steps[0].after[0]"]),
        ({"steps": [step("a"), step("b", after=("a", "a"))]}, ["steps[1].after[1]"]),
        ({"steps": [{"name": "a", "task": "demo.echo", "after": "x"}]}, ["steps[0].after"]),
    ],
)
def test_a_malformed_workflow_is_refused_naming_each_field(body: Any, expected: list[str]) -> None:
    assert fields(body) == expected


def test_a_reference_must_name_a_step_it_comes_after() -> None:
    body = {"steps": [step("a"), step("b"), step("c", payload={"message": result_of("b")}, after=("a",))]}
    assert fields(body) == ["steps[2].payload.message"]
    body = {
        "steps": [
            step("a"),
            step("b", after=("a",)),
            step("c", payload={"x": [result_of("a")]}, after=("b",)),
        ]
    }
    assert parse_workflow(body).steps[2].payload == {"x": [{"$result": "a"}]}  # an ancestor will do


def test_a_malformed_reference_is_refused() -> None:
    body = {
        "steps": [
            step("a"),
            step("b", payload={"m": {"$result": "a", "path": 3}}, after=("a",)),
            step("c", payload={"m": {"$result": "a", "other": 1}}, after=("a",)),
        ]
    }
    assert fields(body) == ["steps[1].payload.m", "steps[2].payload.m"]


def test_tasks_and_payloads_are_checked_like_submissions_with_references_standing_for_any_value() -> None:
    submitter = Submitter.for_services(memory_services(TaskRegistry.from_entry_points()))
    good = parse_workflow(
        {
            "steps": [
                step("a"),
                step("b", payload={"message": result_of("a", "message")}, after=("a",)),
                step("c", "demo.add", {"numbers": [1, result_of("a", "n")]}, after=("a",)),
            ]
        }
    )
    check_tasks(good, submitter, "acme")
    bad = parse_workflow(
        {
            "steps": [
                step("a", task="no.such"),
                step("b", payload={"wrong": 1}),
                step("c", "demo.add", {"numbers": "x"}),
            ]
        }
    )
    with pytest.raises(WorkflowInvalid) as caught:
        check_tasks(bad, submitter, "acme")
    assert [p["field"] for p in caught.value.problems] == [
        "steps[0].task",
        "steps[1].payload.message",
        "steps[2].payload.numbers",
    ]


def test_references_are_substituted_whole_or_by_field() -> None:
    results = {"emit": {"key": "NFe35", "items": [{"n": 1}, {"n": 2}]}}
    payload = {
        "all": result_of("emit"),
        "key": result_of("emit", "key"),
        "n": [result_of("emit", "items.1.n")],
    }
    assert substitute(payload, results) == {"all": results["emit"], "key": "NFe35", "n": [2]}
    with pytest.raises(StepInputMissing):
        substitute({"x": result_of("emit", "items.5")}, results)
    with pytest.raises(StepInputMissing):
        substitute({"x": result_of("other")}, results)


def stored(
    name: str, status: StepStatus, *after: str, job_status: str | None = None, error: str | None = None
) -> Step:
    job_id = None if status is StepStatus.WAITING else f"job-{name}"
    return Step(
        name=name,
        task="demo.echo",
        payload={"message": name},
        after=after,
        status=status,
        job_id=job_id,
        job_status=job_status,
        error=error,
    )


def test_planning_follows_jobs_and_skips_what_a_failure_stops() -> None:
    steps = (
        stored("a", StepStatus.QUEUED, job_status="succeeded"),
        stored("b", StepStatus.QUEUED, job_status="dead", error="boom"),
        stored("c", StepStatus.WAITING, "a"),
        stored("d", StepStatus.WAITING, "b"),
        stored("e", StepStatus.WAITING, "d", "c"),
    )
    found = plan(steps)
    assert [(c.name, c.status) for c in found.changes] == [
        ("a", StepStatus.SUCCEEDED),
        ("b", StepStatus.FAILED),
        ("d", StepStatus.SKIPPED),
        ("e", StepStatus.SKIPPED),
    ]
    assert [s.name for s in found.ready] == ["c"]
    assert found.changes[1].error == "boom"


def test_the_outcome_is_running_until_nothing_can_move() -> None:
    assert (
        outcome((stored("a", StepStatus.SUCCEEDED), stored("b", StepStatus.QUEUED)))[0]
        is WorkflowStatus.RUNNING
    )
    assert outcome((stored("a", StepStatus.SUCCEEDED),)) == (WorkflowStatus.SUCCEEDED, None)
    failed = stored("a", StepStatus.FAILED)
    assert outcome((failed, stored("b", StepStatus.SKIPPED))) == (WorkflowStatus.FAILED, failed)


class CountingSubmitter:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def submit(self, *, task: str, tenant: str, payload: Any, key: str, record_key: bool = False) -> str:
        self.keys.append(key)
        return f"job-{key.rsplit(':', 1)[1]}"


def test_the_advancer_queues_roots_then_finishes_once_all_succeeded() -> None:
    services = memory_services(TaskRegistry.from_entry_points())
    direct = CountingSubmitter()
    advancer = WorkflowAdvancer(services, store=None, direct=direct)  # type: ignore[arg-type]
    workflow = Workflow(
        workflow_id="wf_1",
        tenant="acme",
        name="",
        status=WorkflowStatus.RUNNING,
        created_at=datetime.now(UTC),
        steps=(stored("a", StepStatus.WAITING), stored("b", StepStatus.WAITING, "a")),
    )
    first = advancer.decide(workflow)
    assert [(c.name, c.status, c.job_id) for c in first.steps] == [("a", StepStatus.QUEUED, "job-a")]
    assert first.status is None and direct.keys == ["workflow:wf_1:a"]
    done = Workflow(
        **{
            **vars(workflow),
            "steps": (
                stored("a", StepStatus.SUCCEEDED),
                stored("b", StepStatus.QUEUED, "a", job_status="succeeded"),
            ),
        }
    )
    assert advancer.decide(done).status is WorkflowStatus.SUCCEEDED


def test_the_declaration_builds_the_api_body() -> None:
    flow = Declared("nfe-1")
    last = flow.chain(
        ("emit", "nfe.emit", {"n": 1}), ("danfe", "nfe.danfe", {"key": result_of("emit", "key")})
    )
    flow.step("mail", "mail.send", {"pdf": result_of("danfe")}, after=[last])
    assert flow.to_json() == {
        "name": "nfe-1",
        "steps": [
            {"name": "emit", "task": "nfe.emit", "payload": {"n": 1}, "after": []},
            {
                "name": "danfe",
                "task": "nfe.danfe",
                "payload": {"key": {"$result": "emit", "path": "key"}},
                "after": ["emit"],
            },
            {
                "name": "mail",
                "task": "mail.send",
                "payload": {"pdf": {"$result": "danfe"}},
                "after": ["danfe"],
            },
        ],
    }
    parts = [(f"p{n}", "demo.add", {"numbers": [n]}) for n in range(3)]
    bundle = fan_out(
        parts, ("bundle", "demo.add", {"numbers": [result_of(f"p{n}", "sum") for n in range(3)]})
    )
    assert [s["after"] for s in bundle.to_json()["steps"]] == [[], [], [], ["p0", "p1", "p2"]]
    assert parse_workflow(bundle.to_json()).steps[-1].after == ("p0", "p1", "p2")
    assert [s["after"] for s in chain(*parts).to_json()["steps"]] == [[], ["p0"], ["p1"]]
