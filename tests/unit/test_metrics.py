"""Worker metrics: outcomes that agree with the job store, histograms, limit waits, the endpoint."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack

import pytest
import tornado_tasks.demo.handlers as demo
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.unit import test_worker
from tests.unit.test_key_limits import deliveries
from tests.unit.test_worker import submit
from tornado_core.naming import queue_spec
from tornado_core.observability.metrics import WorkerMetrics
from tornado_core.observability.metrics_server import MetricsServer, start_metrics_server
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services
from tornado_core.toolchain.testing import memory_services
from tornado_core.worker.admission import Admission
from tornado_core.worker.loop import Worker

#: test_worker's fixtures: services on the demo tasks, and workers started and stopped around a test.
services, run_worker = test_worker.services, test_worker.run_worker


def started(run_worker: Callable[[str], Worker], task: str) -> WorkerMetrics:
    """The metrics of a worker started for ``task`` (stopped at the end of the test)."""
    return run_worker(task).metrics


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def store_count(services: Services, task: str, status: JobStatus) -> int:
    return sum(c.count for c in services.jobs.count_jobs() if c.task == task and c.status == status)


def test_outcomes_counted_by_the_worker_agree_with_the_job_store(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    for n in range(3):
        submit(services, "demo.echo", {"message": f"m{n}"})
    for _ in range(2):
        submit(services, "demo.fail", {"retryable": False})
    echo, fail = started(run_worker, "demo.echo"), started(run_worker, "demo.fail")
    labels = {"task": "demo.echo", "version": demo.echo.version, "tenant": "acme"}
    wait_for(lambda: value(echo, "tornado_jobs_total", **labels, outcome="succeeded") == 3, "3 successes")
    dead = {"task": "demo.fail", "version": demo.fail.version, "tenant": "acme", "outcome": "dead"}
    wait_for(lambda: value(fail, "tornado_jobs_total", **dead) == 2, "2 dead jobs")
    assert store_count(services, "demo.echo", JobStatus.SUCCEEDED) == 3
    assert store_count(services, "demo.fail", JobStatus.DEAD) == 2
    version = {"task": "demo.echo", "version": demo.echo.version}
    assert value(echo, "tornado_job_run_seconds_count", **version) == 3
    assert value(echo, "tornado_job_wait_seconds_count", **version) == 3
    assert value(echo, "tornado_jobs_in_flight", **version) == 0
    assert value(echo, "tornado_worker_last_poll_timestamp_seconds", **version) > 0


def test_a_retried_job_counts_one_retry_one_wait_and_two_runs(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    submit(services, "demo.flaky", {"failures": 1})
    flaky = started(run_worker, "demo.flaky")
    labels = {"task": "demo.flaky", "version": demo.flaky.version}
    succeeded = {**labels, "tenant": "acme", "outcome": "succeeded"}
    wait_for(lambda: value(flaky, "tornado_jobs_total", **succeeded) == 1, "the retried job's success")
    assert value(flaky, "tornado_jobs_total", **labels, tenant="acme", outcome="retrying") == 1
    assert value(flaky, "tornado_job_retries_total", **labels) == 1
    assert value(flaky, "tornado_job_wait_seconds_count", **labels) == 1  # the first attempt only
    assert value(flaky, "tornado_job_run_seconds_count", **labels) == 2


def test_a_full_global_cap_is_counted_as_a_limit_wait(
    services: Services, run_worker: Callable[[str], Worker]
) -> None:
    cap = demo.throttled.max_concurrency or 0
    with ExitStack() as held:
        for _ in range(cap):  # every slot of the task's cap is taken elsewhere
            held.enter_context(services.limiter.try_acquire("demo.throttled", cap) or pytest.fail("no slot"))
        throttled = started(run_worker, "demo.throttled")
        labels = {"task": "demo.throttled", "version": demo.throttled.version, "kind": "global"}
        wait_for(lambda: value(throttled, "tornado_limit_waits_total", **labels) >= 1, "a global wait")


def test_per_key_refusals_are_counted_by_kind() -> None:
    services = memory_services([demo.capped, demo.rated])
    metrics = WorkerMetrics("demo.capped", demo.capped.version)
    for spec, count, payload in ((demo.capped, 4, {"seconds": 0}), (demo.rated, 7, {"account": "a"})):
        queue = queue_spec(services.settings.queue_prefix, spec)
        services.queue.ensure_queue(queue)
        admission = Admission(services, spec, on_wait=metrics.limit_wait)
        admission.admit(queue.name, deliveries(services, queue.name, ["big"] * count, payload))
    labels = {"task": "demo.capped", "version": demo.capped.version}
    assert value(metrics, "tornado_limit_waits_total", **labels, kind="concurrency") == 2  # a cap of 2
    assert value(metrics, "tornado_limit_waits_total", **labels, kind="rate") == 2  # a burst of 5


def test_envelope_fields_of_the_wrong_type_are_measured_without_failing() -> None:
    metrics = WorkerMetrics("t", "1")
    metrics.started(1, "yesterday")  # type: ignore[arg-type]
    metrics.ran(0.1, "dead")
    metrics.finished(["not", "a", "tenant"], "dead")  # type: ignore[arg-type]
    assert value(metrics, "tornado_jobs_total", task="t", version="1", tenant="", outcome="dead") == 1
    assert value(metrics, "tornado_job_wait_seconds_count", task="t", version="1") == 0


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_worker_endpoint_serves_its_registry_and_asks_for_the_token_when_set() -> None:
    metrics = WorkerMetrics("demo.echo", "1.0.0")
    metrics.finished("acme", "succeeded")
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0, token="s3cret").start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert scrape(url)[0] == 401
        assert scrape(url, "wrong")[0] == 401
        status, text = scrape(url, "s3cret")
    finally:
        server.close()
    assert status == 200
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("tornado_jobs_total", "succeeded")] == 1


def test_no_port_serves_nothing_and_a_taken_port_does_not_stop_the_worker() -> None:
    registry = CollectorRegistry()
    assert start_metrics_server(registry, host="127.0.0.1", port=0) is None
    first = MetricsServer(registry, host="127.0.0.1", port=0).start()
    try:
        assert start_metrics_server(registry, host="127.0.0.1", port=first.port) is None
    finally:
        first.close()
