"""A job's life over HTTP, on both queue backends: success, batches, idempotency, retries, DLQ."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import pytest

from tests.celery_support import CORE_BACKENDS
from tests.e2e.helpers import start_workers, wait_for_job, wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import ApiError, TornadoClient
from tornado_core.local_machine import tornado_argv
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services

#: The core guarantees hold on every queue backend, the Celery engine's Redis included.
pytestmark = pytest.mark.parametrize("backend", CORE_BACKENDS, indirect=True)


@pytest.fixture(scope="module", autouse=True)
def demo_workers(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    start_workers(
        module_cluster,
        ("demo.echo", "demo.flaky", "demo.fail", "demo.sleep", "demo.report"),
        extra=["--poll-wait", "1"],
    )


def test_submitted_job_succeeds_with_its_result(client: TornadoClient) -> None:
    receipt = client.submit("demo.echo", {"message": "NF-e 35240112345678000195550010000000011"})
    assert receipt["status"] == "queued"
    assert receipt["task"] == "demo.echo"
    assert receipt["version"] == "1.0.0"
    job = client.wait(receipt["id"], timeout=30)
    assert job["status"] == "succeeded"
    assert job["result"] == {"message": "NF-e 35240112345678000195550010000000011"}
    assert job["attempts"] == 1


def test_batch_submit_queues_every_good_item_and_reports_bad_ones(client: TornadoClient) -> None:
    answer = client.submit_batch(
        [
            {"task": "demo.echo", "payload": {"message": "one"}},
            {"task": "demo.echo", "payload": {"wrong": "field"}},
            {"task": "demo.echo", "payload": {"message": "three"}},
        ]
    )
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert "error" in results[1] and results[1]["error"]["fields"][0]["field"] == "payload.message"
    for item, text in ((results[0], "one"), (results[2], "three")):
        assert client.wait(item["id"], timeout=30)["result"] == {"message": text}


def test_same_idempotency_key_returns_the_same_job(
    client: TornadoClient, services: Services, queue_of: Callable[[str], str]
) -> None:
    first = client.submit("demo.echo", {"message": "once"}, idempotency_key="order-4711")
    second = client.submit("demo.echo", {"message": "once"}, idempotency_key="order-4711")
    assert first["id"] == second["id"]
    job = client.wait(first["id"], timeout=30)
    assert job["status"] == "succeeded"
    # Both messages (the re-submission queued a second one) are consumed; the job ran once. When one
    # receive brings both, the second waits for the first run and finds the job done: it does not
    # wait out demo.echo's visibility timeout (60 s).
    empty = lambda: services.queue.depth(queue_of("demo.echo")).total == 0  # noqa: E731
    wait_until(empty, timeout=30, what="the queue to empty")
    record = services.jobs.get(first["id"])
    assert record is not None and record.attempts == 1


def test_flaky_job_retries_with_growing_delays_then_succeeds(
    client: TornadoClient, module_cluster: LocalCluster
) -> None:
    receipt = client.submit("demo.flaky", {"failures": 2})
    job = client.wait(receipt["id"], timeout=30)
    assert job["status"] == "succeeded"
    assert job["result"] == {"attempts": 3}
    assert job["attempts"] == 3
    # The delays the worker chose (its log says why it waits); wall-clock gaps on a loaded machine,
    # and SQS's whole-second visibility, would not tell them apart.
    (worker,) = [p for p in module_cluster.processes if p.name.startswith("worker-demo.flaky")]
    said = [line for line in worker.log_path.read_text().splitlines() if receipt["id"] in line]
    delays = [float(m.group(1)) for line in said if (m := re.search(r"retry in ([0-9.]+)s", line))]
    assert len(delays) == 2 and 0 < delays[0] < delays[1], said


def test_always_failing_job_lands_in_the_dlq_after_max_receives_and_redrive_brings_it_back(
    client: TornadoClient,
    services: Services,
    dlq_of: Callable[[str], str],
    queue_of: Callable[[str], str],
    tornado_cli: Callable[..., object],
) -> None:
    receipt = client.submit("demo.fail", {"reason": "SEFAZ rejected"})
    max_attempts = services.registry.get("demo.fail").retry.max_attempts
    wait_until(lambda: services.queue.depth(dlq_of("demo.fail")).total == 1, what="the DLQ to hold the job")
    record = wait_for_job(services, receipt["id"], JobStatus.DEAD)
    assert record.attempts == max_attempts
    assert record.error_message == "SEFAZ rejected"
    assert services.queue.depth(queue_of("demo.fail")).total == 0

    listing = tornado_cli("dlq", "list", "--task", "demo.fail")
    assert receipt["id"] in listing.stdout  # type: ignore[attr-defined]
    redriven = tornado_cli("dlq", "redrive", "--task", "demo.fail")
    assert "redrove 1 job(s)" in redriven.stdout  # type: ignore[attr-defined]
    wait_until(
        lambda: (services.jobs.get(receipt["id"]) or record).attempts > max_attempts,
        what="the redriven job to run again",
    )
    wait_until(lambda: services.queue.depth(dlq_of("demo.fail")).total == 1, what="the job to be dead again")


def test_non_retryable_error_goes_to_the_dlq_at_once(
    client: TornadoClient, services: Services, dlq_of: Callable[[str], str]
) -> None:
    before = services.queue.depth(dlq_of("demo.fail")).total
    receipt = client.submit("demo.fail", {"reason": "CNPJ does not exist", "retryable": False})
    record = wait_for_job(services, receipt["id"], JobStatus.DEAD)
    assert record.attempts == 1
    assert record.error_type == "NonRetryable"
    wait_until(lambda: services.queue.depth(dlq_of("demo.fail")).total == before + 1, what="the DLQ")


def test_dlq_discard_asks_first_and_then_marks_the_jobs_failed(
    client: TornadoClient, services: Services, dlq_of: Callable[[str], str], e2e_env: dict[str, str]
) -> None:
    dlq = dlq_of("demo.fail")
    held = services.queue.depth(dlq).total + 1
    receipt = client.submit("demo.fail", {"reason": "duplicate NF-e number", "retryable": False})
    wait_for_job(services, receipt["id"], JobStatus.DEAD)
    # The worker records the job dead before it moves the message: wait for the message itself.
    wait_until(lambda: services.queue.depth(dlq).total == held, what="the DLQ to hold the job")

    def discard(answer: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            tornado_argv("dlq", "discard", "--task", "demo.fail"), input=answer, env=e2e_env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    declined = discard("n\n")
    assert declined.returncode == 1 and "Aborted" in declined.stderr, declined.stderr
    assert services.queue.depth(dlq).total == held  # declining changed nothing
    assert wait_for_job(services, receipt["id"], JobStatus.DEAD).status is JobStatus.DEAD

    confirmed = discard("y\n")
    assert confirmed.returncode == 0 and f"discarded {held} job(s)" in confirmed.stdout, confirmed.stdout
    assert services.queue.depth(dlq).total == 0
    assert wait_for_job(services, receipt["id"], JobStatus.FAILED).status is JobStatus.FAILED


def test_a_large_result_is_claim_checked_to_the_object_store(
    client: TornadoClient, services: Services
) -> None:
    big = "r" * (services.settings.claim_check_bytes + 10)
    receipt = client.submit("demo.echo", {"message": big})
    job = client.wait(receipt["id"], timeout=60)
    assert job["status"] == "succeeded"
    assert job["result_ref"] == f"results/demo.echo/{receipt['id']}.json"
    assert json.loads(services.objects.get(job["result_ref"])) == {"message": big}


def test_a_queued_job_cancelled_over_http_never_runs(
    client: TornadoClient, module_cluster: LocalCluster, services: Services, queue_of: Callable[[str], str]
) -> None:
    # No worker serves demo.throttled yet: the job waits in its queue.
    receipt = client.submit("demo.throttled", {"seconds": 0, "steps": 1})
    assert client.cancel(receipt["id"]) == {
        "id": receipt["id"],
        "status": "cancelled",
        "cancel_requested": False,
    }
    module_cluster.start_worker("demo.throttled", concurrency=2, extra=["--poll-wait", "1"])
    wait_until(
        lambda: services.queue.depth(queue_of("demo.throttled")).total == 0, what="the message dropped"
    )
    job = client.get(receipt["id"])
    assert job["status"] == "cancelled" and job["attempts"] == 0


def test_a_running_job_stops_when_cancelled_and_its_worker_goes_on(
    client: TornadoClient, services: Services
) -> None:
    receipt = client.submit("demo.sleep", {"seconds": 100, "steps": 1000})
    wait_for_job(services, receipt["id"], JobStatus.RUNNING)
    answer = client.cancel(receipt["id"])
    assert answer == {"id": receipt["id"], "status": "running", "cancel_requested": True}
    record = wait_for_job(services, receipt["id"], JobStatus.CANCELLED)
    assert record.error_type == "JobCancelled" and record.progress < 1 and record.attempts == 1
    after = client.submit("demo.sleep", {"seconds": 0.1, "steps": 1})
    assert client.wait(after["id"], timeout=30)["status"] == "succeeded"


def test_cancelling_a_finished_job_is_409_and_changes_nothing(
    client: TornadoClient,
    tornado_cli: Callable[..., subprocess.CompletedProcess[str]],
    api_url: str,
    tenant_token: str,
) -> None:
    receipt = client.submit("demo.echo", {"message": "done"})
    assert client.wait(receipt["id"], timeout=30)["status"] == "succeeded"
    with pytest.raises(ApiError) as refused:
        client.cancel(receipt["id"])
    assert refused.value.status == 409 and refused.value.code == "job_finished"
    cli = tornado_cli(
        "jobs", "cancel", receipt["id"], "--api-url", api_url, "--token", tenant_token, check=False
    )
    assert cli.returncode == 1 and "has already finished (succeeded)" in cli.stderr
    assert client.get(receipt["id"])["status"] == "succeeded"


def test_cancel_through_the_cli_and_of_another_tenants_job(
    client: TornadoClient,
    other_tenant_token: str,
    api_url: str,
    tenant_token: str,
    tornado_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    receipt = client.submit("demo.sleep", {"seconds": 100, "steps": 1000})
    with pytest.raises(ApiError) as hidden:
        TornadoClient(api_url, other_tenant_token).cancel(receipt["id"])
    assert hidden.value.status == 404
    shown = tornado_cli("jobs", "cancel", receipt["id"], "--api-url", api_url, "--token", tenant_token)
    assert json.loads(shown.stdout)["id"] == receipt["id"]
    assert client.wait(receipt["id"], timeout=30)["status"] == "cancelled"


def test_concurrent_submissions_of_a_unique_job_yield_one_job(api_url: str, tenant_token: str) -> None:
    payload = {"company": f"acme-{uuid.uuid4().hex[:6]}", "period": "2026-10", "seconds": 1}
    gate = threading.Barrier(10)

    def submit(_: int) -> tuple[str, bool]:
        client = TornadoClient(api_url, tenant_token)  # a connection per thread
        gate.wait()
        receipt = client.submit("demo.report", payload)
        return str(receipt["id"]), bool(receipt.get("existing"))

    with ThreadPoolExecutor(10) as pool:
        receipts = list(pool.map(submit, range(10)))
    assert len({job_id for job_id, _ in receipts}) == 1
    assert sorted(existing for _, existing in receipts) == [False] + [True] * 9
    client = TornadoClient(api_url, tenant_token)
    job = client.wait(receipts[0][0], timeout=30)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    again = client.submit("demo.report", payload)  # it finished: the key is free again
    assert again["id"] != job["id"] and "existing" not in again


def test_a_delayed_job_runs_no_earlier_than_its_delay(client: TornadoClient, services: Services) -> None:
    receipt = client.submit("demo.echo", {"message": "later"}, delay=2)
    job = client.wait(receipt["id"], timeout=30)
    assert job["status"] == "succeeded"
    record = services.jobs.get(receipt["id"])
    assert record is not None and record.started_at is not None
    # Not before its time (a lower bound: a loaded machine can only make it later).
    assert record.started_at >= record.created_at + timedelta(seconds=2)


def test_a_scheduled_job_cancelled_before_its_time_never_runs(
    client: TornadoClient, services: Services, queue_of: Callable[[str], str]
) -> None:
    receipt = client.submit("demo.echo", {"message": "never"}, delay=3)
    assert client.cancel(receipt["id"])["status"] == "cancelled"
    # Once due, its message is received, refused by the claim and dropped.
    wait_until(lambda: services.queue.depth(queue_of("demo.echo")).total == 0, what="the message dropped")
    job = client.get(receipt["id"])
    assert job["status"] == "cancelled" and job["attempts"] == 0
