"""Metrics scraped during a run agree with the job store and the dead-letter queue, on both queue backends.

A real API and one real worker process per task (each with ``--metrics-port``) run a known mix:
jobs that succeed, jobs that succeed after a retry, jobs that die after their retries and jobs that
die at once. Once every job is finished, the workers' and the API's ``/metrics`` are scraped and
parsed, and each count is compared with what the job store and the queue say.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.helpers import wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.local_machine import free_port
from tornado_core.ports.jobs import FINISHED_STATUSES, JobRecord
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token

#: The mix: task -> payloads (each its own job).
MIX: dict[str, list[dict[str, Any]]] = {
    "demo.echo": [{"message": f"m{n}"} for n in range(12)],
    "demo.flaky": [{"failures": 1}] * 4,  # one retry each, then success
    "demo.fail": [{"reason": "retried"}] * 3 + [{"reason": "at once", "retryable": False}] * 3,
}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of a ``/metrics`` page, by name and labels."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    families = text_string_to_metric_families(text)
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a metric over the samples that carry ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, have), value in samples.items() if n == name and wanted <= have)


@pytest.fixture(scope="module")
def tenant(services: Services) -> tuple[str, str]:
    """A tenant of this module alone: its counts in the job store are exactly this module's jobs."""
    name, token = f"metrics-{uuid.uuid4().hex[:8]}", new_token()
    services.tenants.create(name, hash_token(token))
    return name, token


@pytest.fixture(scope="module")
def worker_metrics(tenant: tuple[str, str], module_cluster: LocalCluster, api_url: str) -> dict[str, str]:
    """One worker per task of the mix, each serving its metrics; their URLs by task."""
    urls = {}
    for task in MIX:
        port = free_port()
        module_cluster.start_worker(task, extra=["--poll-wait", "1", "--metrics-port", str(port)])
        urls[task] = f"http://127.0.0.1:{port}/metrics"
    return urls


@pytest.fixture(scope="module")
def finished_run(
    tenant: tuple[str, str], worker_metrics: dict[str, str], api_url: str, services: Services
) -> dict[str, list[JobRecord]]:
    """Submit the mix over HTTP and wait until each job is finished; their records by task."""
    client = TornadoClient(api_url, tenant[1])
    ids = {
        task: [client.submit(task, payload)["id"] for payload in payloads] for task, payloads in MIX.items()
    }

    def records() -> dict[str, list[JobRecord]] | None:
        found = {task: [services.jobs.get(job_id) for job_id in job_ids] for task, job_ids in ids.items()}
        done = all(r is not None and r.status in FINISHED_STATUSES for rs in found.values() for r in rs)
        return found if done else None  # type: ignore[return-value]

    return wait_until(records, timeout=120, what="every job of the mix to finish")  # type: ignore[return-value]


def outcomes(url: str, tenant: str) -> dict[str, float]:
    """A worker's ``tornado_jobs_total`` of one tenant, by outcome."""
    found: Counter[str] = Counter()
    for (name, labels), value in scrape(url).items():
        if name == "tornado_jobs_total" and ("tenant", tenant) in labels:
            found[dict(labels)["outcome"]] += value
    return dict(found)


def test_worker_counters_agree_with_the_job_store(
    tenant: tuple[str, str], worker_metrics: dict[str, str], finished_run: dict[str, list[JobRecord]]
) -> None:
    for task, records in finished_run.items():
        retries = sum(r.attempts - 1 for r in records)
        expected = {**Counter(str(r.status) for r in records), **({"retrying": retries} if retries else {})}
        # A success is counted once it is durable, a death once recorded: moments after the store shows it.
        wait_until(
            lambda task=task, expected=expected: outcomes(worker_metrics[task], tenant[0]) == expected,
            timeout=30, what=f"{task}'s outcomes to match the store's {expected}",
        )  # fmt: skip
        samples = scrape(worker_metrics[task])
        assert total(samples, "tornado_job_retries_total") == retries, task
        assert total(samples, "tornado_job_wait_seconds_count") == len(records), task  # first attempts
        assert total(samples, "tornado_job_run_seconds_count") == len(records) + retries, task
        assert total(samples, "tornado_jobs_in_flight") == 0, task
    assert Counter(str(r.status) for r in finished_run["demo.fail"]) == {"dead": 6}
    assert Counter(str(r.status) for r in finished_run["demo.flaky"]) == {"succeeded": 4}


def test_the_apis_gauges_agree_with_the_store_and_the_dead_letter_queue(
    tenant: tuple[str, str],
    api_url: str,
    services: Services,
    finished_run: dict[str, list[JobRecord]],
    worker_metrics: dict[str, str],
    dlq_of: Callable[[str], str],
) -> None:
    dead = len(finished_run["demo.fail"])
    wait_until(lambda: services.queue.depth(dlq_of("demo.fail")).total == dead, timeout=60, what="the DLQ")

    def api_dead_letters() -> float:
        return total(scrape(f"{api_url}/metrics"), "tornado_queue_dead_letters", task="demo.fail")

    wait_until(lambda: api_dead_letters() == dead, timeout=30, what="the API to show the DLQ's depth")
    worker_dead = total(
        scrape(worker_metrics["demo.fail"]), "tornado_jobs_total", outcome="dead", tenant=tenant[0]
    )
    assert worker_dead == dead

    def store_agrees() -> bool:  # the store's counts are cached up to 15 s by the API
        shown = {
            (dict(labels)["task"], dict(labels)["version"], dict(labels)["status"]): value
            for (name, labels), value in scrape(f"{api_url}/metrics").items()
            if name == "tornado_store_jobs" and dict(labels)["task"] in MIX
        }
        counted = {
            (c.task, c.version, c.status): c.count for c in services.jobs.count_jobs() if c.task in MIX
        }
        return shown == counted

    wait_until(store_agrees, timeout=45, what="tornado_store_jobs to match the job store")
    samples = scrape(f"{api_url}/metrics")
    for task, payloads in MIX.items():
        assert total(samples, "tornado_jobs_submitted_total", task=task, tenant=tenant[0]) == len(payloads)
    submissions = sum(len(payloads) for payloads in MIX.values())
    accepted = {"route": "JobsHandler", "method": "POST", "status": "202"}
    assert total(samples, "tornado_http_requests_total", **accepted) == submissions
