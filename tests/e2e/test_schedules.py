"""Scheduled and periodic jobs with real API, worker and scheduler processes, on both queue backends."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import datetime, timedelta

import psycopg2
import pytest

from tests.e2e.helpers import wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import ApiError, TornadoClient
from tornado_core.services import Services

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module", autouse=True)
def echo_worker(module_cluster: LocalCluster, api_launch: Future[str]) -> None:
    module_cluster.start_worker("demo.echo", concurrency=4, extra=["--poll-wait", "1"])


@pytest.fixture
def ticker(client: TornadoClient) -> Iterator[str]:
    """A schedule name of this test alone, removed at its end."""
    name = f"ticker-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(ApiError):
        client.remove_schedule(name)


def occurrence_jobs(postgres_url: str, name: str) -> list[tuple[datetime, str, int]]:
    """The jobs a schedule queued: (occurrence, status, attempts), by occurrence."""
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT idempotency_key, status, attempts FROM tornado_jobs WHERE idempotency_key LIKE %s",
            (f"schedule:{name}:%",),
        )
        rows = cur.fetchall()
    conn.close()
    return sorted(
        (datetime.fromisoformat(key.split(":", 2)[2]), status, attempts) for key, status, attempts in rows
    )


def test_a_job_twenty_minutes_ahead_runs_once_when_its_time_comes(
    client: TornadoClient, services: Services, tornado_cli: Cli
) -> None:
    receipt = client.submit("demo.echo", {"message": "in twenty minutes"}, delay=1200)
    assert receipt["status"] == "scheduled"
    # Other tests' parked jobs may be sent too: what counts is this job's own record.
    tornado_cli("scheduler", "--once", "--clock-offset", "600")
    assert client.get(receipt["id"])["status"] == "scheduled"
    # The scheduler's clock moved 20 minutes ahead stands for the wait.
    tornado_cli("scheduler", "--once", "--clock-offset", "1230")
    job = client.wait(receipt["id"], timeout=30)
    assert (job["status"], job["attempts"], job["result"]) == (
        "succeeded",
        1,
        {"message": "in twenty minutes"},
    )
    tornado_cli("scheduler", "--once", "--clock-offset", "1300")
    assert client.get(receipt["id"])["attempts"] == 1


def test_a_scheduled_job_cancelled_before_its_time_is_never_sent(
    client: TornadoClient, postgres_url: str, tornado_cli: Cli
) -> None:
    receipt = client.submit("demo.echo", {"message": "never"}, delay=3600)
    assert client.cancel(receipt["id"])["status"] == "cancelled"
    tornado_cli("scheduler", "--once", "--clock-offset", "7200")
    job = client.get(receipt["id"])
    assert (job["status"], job["attempts"]) == ("cancelled", 0)
    with psycopg2.connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM tornado_scheduled_jobs WHERE job_id = %s", (receipt["id"],))
        assert cur.fetchone() == (0,)  # its parked message went with the cancellation
    conn.close()


def test_each_occurrence_runs_once_with_two_schedulers_and_one_killed(
    client: TornadoClient, cluster: LocalCluster, postgres_url: str, ticker: str
) -> None:
    client.put_schedule(ticker, "demo.echo", {"message": "tick"}, cron="* * * * * *")
    first = cluster.start_scheduler(extra=["--interval", "0.2"])
    cluster.start_scheduler(extra=["--interval", "0.2"])
    wait_until(lambda: len(occurrence_jobs(postgres_url, ticker)) >= 3, timeout=60, what="three occurrences")
    first.kill()
    before = len(occurrence_jobs(postgres_url, ticker))
    wait_until(
        lambda: len(occurrence_jobs(postgres_url, ticker)) >= before + 3, timeout=60, what="three more"
    )
    client.put_schedule(ticker, "demo.echo", {"message": "tick"}, cron="* * * * * *", paused=True)
    jobs = occurrence_jobs(postgres_url, ticker)
    wait_until(
        lambda: all(s == "succeeded" for _, s, _ in occurrence_jobs(postgres_url, ticker)[: len(jobs)]),
        timeout=60, what="every occurrence's job done",
    )  # fmt: skip
    done = occurrence_jobs(postgres_url, ticker)
    occurrences = [when for when, _, _ in done]
    # One job per second between the first and the last occurrence: none doubled, none lost.
    assert occurrences == [occurrences[0] + timedelta(seconds=n) for n in range(len(occurrences))]
    assert all(attempts == 1 for _, _, attempts in done[: len(jobs)])


def test_schedules_through_the_cli(tornado_cli: Cli) -> None:
    bad = tornado_cli("schedules", "add", "nightly", "demo.echo", '{"message": "x"}', "--tenant", "acme",
                      "--cron", "61 * * * *", check=False)  # fmt: skip
    assert bad.returncode == 1 and "cron" in bad.stderr
    added = tornado_cli("schedules", "add", "nightly", "demo.echo", '{"message": "x"}', "--tenant", "acme",
                        "--cron", "0 2 * * *", "--timezone", "America/Sao_Paulo")  # fmt: skip
    assert "acme/nightly: demo.echo at '0 2 * * *' America/Sao_Paulo" in added.stdout
    assert "paused" in tornado_cli("schedules", "pause", "nightly", "--tenant", "acme").stdout
    assert "acme/nightly" in tornado_cli("schedules", "list", "--tenant", "acme").stdout
    assert "removed" in tornado_cli("schedules", "remove", "nightly", "--tenant", "acme").stdout
    gone = tornado_cli("schedules", "remove", "nightly", "--tenant", "acme", check=False)
    assert gone.returncode == 1 and "no schedule named 'nightly'" in gone.stderr
