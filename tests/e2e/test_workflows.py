"""Workflows with real API, worker and scheduler processes, on both queue backends: chains, fan-out/fan-in,
batches with a callback, failures that stop what depends on them, a worker killed mid-workflow, bad input."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import psycopg2
import pytest

from tests.e2e.helpers import effect_rows, start_workers, wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import ApiError, TornadoClient
from tornado_core.workflows.declare import Workflow, chain, fan_out, result_of


@pytest.fixture(scope="module", autouse=True)
def workers(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    start_workers(module_cluster, ("demo.echo", "demo.add", "demo.fail"), extra=["--poll-wait", "1"])
    module_cluster.start_scheduler(extra=["--interval", "0.2"])


def finished(client: TornadoClient, workflow_id: str) -> dict[str, Any]:
    return client.wait_workflow(workflow_id, timeout=90)


def steps_of(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in workflow["steps"]}


def result(client: TornadoClient, step: dict[str, Any]) -> Any:
    return client.get(step["job_id"])["result"]


def step_jobs(postgres_url: str, workflow_id: str) -> list[tuple[str, str]]:
    """Every job queued for the workflow's steps: (idempotency key, status)."""
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT idempotency_key, status FROM tornado_jobs WHERE idempotency_key LIKE %s ORDER BY 1",
            (f"workflow:{workflow_id}:%",),
        )
        rows = [(str(key), str(status)) for key, status in cur.fetchall()]
    conn.close()
    return rows


def test_a_chain_of_three_completes_with_each_result_passed_on(client: TornadoClient) -> None:
    flow = chain(
        ("emit", "demo.echo", {"message": "NFe 35-001"}),
        ("danfe", "demo.echo", {"message": result_of("emit", "message")}),
        ("mail", "demo.add", {"numbers": [1, 2]}),
        name="nfe-chain",
    )
    accepted = client.submit_workflow(flow)
    assert accepted["status"] == "running"
    # The first step is queued before the answer (a fast worker may even have run it by then); the
    # second waits for it.
    first, second = steps_of(accepted)["emit"]["status"], steps_of(accepted)["danfe"]["status"]
    assert first in ("queued", "succeeded")
    if first == "queued":
        assert second == "waiting"
    done = finished(client, accepted["id"])
    assert done["status"] == "succeeded" and done["failure"] is None
    assert done["progress"] == {"finished": 3, "steps": 3, "fraction": 1.0}
    steps = steps_of(done)
    assert result(client, steps["danfe"]) == {"message": "NFe 35-001"}
    assert result(client, steps["mail"])["sum"] == 3


def test_a_fan_out_of_four_and_a_fan_in_that_sees_every_result(client: TornadoClient) -> None:
    parts = [(f"part-{n}", "demo.add", {"numbers": [n, 10]}) for n in range(4)]
    bundle = ("bundle", "demo.add", {"numbers": [result_of(f"part-{n}", "sum") for n in range(4)]})
    done = finished(client, client.submit_workflow(fan_out(parts, bundle, name="sped"))["id"])
    assert done["status"] == "succeeded"
    fan_in = result(client, steps_of(done)["bundle"])
    assert fan_in["numbers"] == [10, 11, 12, 13] and fan_in["sum"] == 46


def test_a_batch_with_a_completion_callback(client: TornadoClient) -> None:
    flow = Workflow("batch")
    flow.batch(
        [(f"item-{n}", "demo.echo", {"message": f"item {n}"}) for n in range(5)],
        ("callback", "demo.add", {"numbers": [1]}),
    )
    done = finished(client, client.submit_workflow(flow)["id"])
    assert done["status"] == "succeeded"
    assert {step["status"] for step in done["steps"]} == {"succeeded"}
    assert steps_of(done)["callback"]["after"] == [f"item-{n}" for n in range(5)]


def test_a_failed_step_stops_what_depends_on_it_and_fails_the_workflow_naming_it(
    client: TornadoClient,
) -> None:
    flow = Workflow("failing")
    flow.step("emit", "demo.fail", {"reason": "SEFAZ rejected", "retryable": False})
    flow.step("danfe", "demo.echo", {"message": result_of("emit", "message")}, after=["emit"])
    flow.step("mail", "demo.echo", {"message": "never"}, after=["danfe"])
    flow.step("audit", "demo.echo", {"message": "independent"})
    done = finished(client, client.submit_workflow(flow)["id"])
    assert done["status"] == "failed"
    assert done["failure"]["step"] == "emit" and "SEFAZ rejected" in done["failure"]["error"]
    steps = steps_of(done)
    assert {name: s["status"] for name, s in steps.items()} == {
        "emit": "failed",
        "danfe": "skipped",
        "mail": "skipped",
        "audit": "succeeded",
    }
    assert steps["danfe"]["job_id"] is None and steps["mail"]["job_id"] is None  # never queued


def test_a_worker_killed_mid_workflow_loses_nothing_and_doubles_nothing(
    client: TornadoClient, cluster: LocalCluster, postgres_url: str, erp_database_url: str
) -> None:
    sleep = {"seconds": 1.5, "steps": 5, "record_effect": True}
    flow = chain(("one", "demo.sleep", sleep), ("two", "demo.sleep", sleep), ("three", "demo.sleep", sleep))
    worker = cluster.start_worker("demo.sleep", concurrency=2, extra=["--poll-wait", "1"])
    workflow_id = client.submit_workflow(flow)["id"]

    def second_step_running() -> bool:
        return steps_of(client.get_workflow(workflow_id))["two"]["job_status"] == "running"

    wait_until(second_step_running, timeout=60, what="the second step running")
    worker.kill()  # SIGKILL, mid-step
    cluster.start_worker("demo.sleep", concurrency=2, extra=["--poll-wait", "1"])
    done = finished(client, workflow_id)
    assert done["status"] == "succeeded"
    jobs = step_jobs(postgres_url, workflow_id)
    assert jobs == [(f"workflow:{workflow_id}:{name}", "succeeded") for name in ("one", "three", "two")]
    assert all(effect_rows(erp_database_url, step["job_id"]) == 1 for step in done["steps"])


def test_cancelling_a_workflow_stops_its_waiting_steps_and_its_queued_jobs(client: TornadoClient) -> None:
    flow = chain(("held", "demo.throttled", {"seconds": 1}), ("after", "demo.echo", {"message": "no"}))
    accepted = client.submit_workflow(flow)  # no demo.throttled worker runs here: its job waits
    cancelled = client.cancel_workflow(accepted["id"])
    assert cancelled["status"] == "cancelled"
    assert [s["status"] for s in cancelled["steps"]] == ["cancelled", "cancelled"]
    held = steps_of(cancelled)["held"]["job_id"]
    assert client.get(held)["status"] == "cancelled"
    assert client.cancel_workflow(accepted["id"])["status"] == "cancelled"  # again: unchanged


BAD_BODIES: list[tuple[Any, set[str]]] = [
    ({"steps": []}, {"steps"}),
    ({"steps": [{"name": "a", "task": "demo.echo", "payload": {"message": "x"}}], "color": "red"}, {"color"}),
    (
        {"steps": [{"name": "a", "task": "demo.echo", "payload": {"message": "x"}},
                   {"name": "b", "task": "no.such.task", "after": ["a"]},
                   {"name": "c", "task": "demo.echo", "payload": {"message": 5}, "after": ["a"]},
                   {"name": "d", "task": "demo.echo", "payload": {"message": "x"}, "after": ["zz"]}]},
        {"steps[3].after[0]"},
    ),
    (
        {"steps": [{"name": "a", "task": "demo.echo", "payload": {"message": "x"}},
                   {"name": "b", "task": "no.such.task", "after": ["a"]},
                   {"name": "c", "task": "demo.echo", "payload": {"message": 5}, "after": ["a"]}]},
        {"steps[1].task", "steps[2].payload.message"},
    ),
    (
        {"steps": [{"name": "a", "task": "demo.echo", "payload": {"message": {"$result": "b"}}},
                   {"name": "b", "task": "demo.echo", "payload": {"message": "x"}}]},
        {"steps[0].payload.message"},
    ),
    ({"steps": [{"name": "a", "task": "demo.echo"}, {"name": "a", "task": "demo.echo"}]}, {"steps[1].name"}),
]  # fmt: skip


@pytest.mark.parametrize(("body", "expected"), BAD_BODIES)
def test_bad_input_is_a_422_naming_each_field_and_creates_nothing(
    client: TornadoClient, body: Any, expected: set[str]
) -> None:
    before = [w["id"] for w in client.workflows(limit=100)]
    with pytest.raises(ApiError) as caught:
        client.submit_workflow(body)
    assert caught.value.status == 422
    assert {f["field"] for f in caught.value.fields} == expected
    assert [w["id"] for w in client.workflows(limit=100)] == before


def test_unknown_workflows_and_bad_listings_are_4xx(
    client: TornadoClient, api_url: str, other_tenant_token: str
) -> None:
    mine = client.submit_workflow(chain(("only", "demo.echo", {"message": "mine"})))["id"]
    other = TornadoClient(api_url, other_tenant_token)
    for call, workflow_id in [
        (other.get_workflow, mine),
        (other.cancel_workflow, mine),
        (client.get_workflow, "wf_nope"),
        (client.cancel_workflow, "nope"),
    ]:
        with pytest.raises(ApiError) as caught:
            call(workflow_id)
        assert caught.value.status == 404
    assert mine not in [w["id"] for w in other.workflows()]
    with pytest.raises(ApiError) as caught:
        client.workflows(status="sleeping")
    assert (caught.value.status, [f["field"] for f in caught.value.fields]) == (400, ["status"])
    with pytest.raises(ApiError) as caught:
        client.workflows(limit=1000)
    assert (caught.value.status, [f["field"] for f in caught.value.fields]) == (400, ["limit"])
