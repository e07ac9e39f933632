"""Tornado's side of ``bench.peers``: the worker drain (``bench.worker_throughput``) and the producers.

* drain: :func:`bench.worker_throughput.run_worker` as is (pre-fill with the API's
  envelopes and ``queued`` rows, one ``tornado worker`` process, job-store clock);
* in-process producer: what the API does, without HTTP, done synchronously:
  ``Submitter.prepare`` (one job) or ``Submitter.prepare_many`` (a batch: validation, job
  ids, envelopes), then the messages and their ``queued`` rows in one commit
  (``QueueAndJobsPort.send_recorded``);
* HTTP: ``TornadoClient.submit`` / ``submit_many`` against one ``tornado api`` process.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench._common import ECHO, BenchStack, CpuMeter, Stopwatch, api_server, scope, stack_groups, warm_up
from bench._peers_base import Result, message
from bench.worker_throughput import run_worker
from tornado_core.client import ApiError, TornadoClient
from tornado_core.ports.queue import OutgoingMessage
from tornado_core.producer.submission import Submitter

SYSTEM = "tornado"
WARM_UP_POSTS = 3


def drain(stack: BenchStack, measure: str, count: int, concurrency: int, timeout: float) -> Result:
    """``bench.worker_throughput.run_worker``: one ``tornado worker`` drains ``count`` pre-filled jobs."""
    run = run_worker(stack, "postgres", count, concurrency=concurrency, timeout=timeout)
    cpu = run.cpu
    note = (
        f"N={count}; `tornado worker --concurrency {concurrency} --poll-wait 1`; first claim to last "
        f"success {run.seconds:.2f}s (job store: started_at, finished_at); cores: worker "
        f"{cpu.cores('worker'):.2f}, {cpu.stack_cores()}; postgres "
        f"{cpu.used.get('postgres', 0.0) / count * 1e6:.0f} us/job; statuses {run.statuses}"
    )
    return Result(SYSTEM, measure, count, run.seconds, cpu.used.get("worker", 0.0), note)


def enqueue_in_process(stack: BenchStack, measure: str, count: int, batch: int) -> Result:
    """Prepare + the message and its ``queued`` row in one commit (as the API does on PostgreSQL)."""
    with scope(stack, "postgres", "pq", pool_size=2) as scoped:
        services = scoped.services
        services.queue.ensure_queue(scoped.spec)
        services.queue.ping()
        submitter = Submitter.for_services(services)
        watch = Stopwatch(CpuMeter(stack_groups(stack))).start()
        joint = services.queue_and_jobs
        assert joint is not None  # the PostgreSQL backend
        for start in range(0, count, batch):
            end = min(count, start + batch)
            ordinary = [(ECHO, {"message": message(i)}, None) for i in range(start, end)]
            if batch == 1:
                job = submitter.prepare(task=ECHO, tenant=scoped.tenant, payload=ordinary[0][1])
                sends = [(job.queue, [(job.body, job.as_new_job())])]
            else:  # as the API prepares a batch of ordinary jobs
                prepared = submitter.prepare_many(tenant=scoped.tenant, jobs=ordinary)
                assert prepared is not None
                sends = [
                    (g.queue, g.messages(prepared.tenant, prepared.submitted_at)) for g in prepared.groups
                ]
            for queue, messages in sends:
                outgoing = [OutgoingMessage(body) for body, _ in messages]
                errors = joint.send_recorded(queue, outgoing, [job for _, job in messages])
                assert all(error is None for error in errors), errors
        watch.stop()
        stored = scoped.stored()
    calls = "per job" if batch == 1 else f"per {batch} jobs"
    note = (
        f"N={count}; Submitter.{'prepare' if batch == 1 else 'prepare_many'} + "
        f"QueueAndJobsPort.send_recorded {calls}, one thread "
        f"(message and queued row in 1 commit per call); queued afterwards {stored}; "
        f"{_stack_note(watch.cpu, count)}"
    )
    return Result(SYSTEM + " (in-process)", measure, count, watch.seconds, watch.self_cpu, note)


def enqueue_http(
    stack: BenchStack, measure: str, count: int, batch: int, *, parallel: int = 1, processes: int = 1
) -> Result:
    """``TornadoClient.submit`` (batch 1) or ``submit_many(chunk=batch, parallel=...)`` to the API
    (one process, or ``processes`` sharing its port as ``tornado api --processes`` runs them)."""
    with (
        scope(stack, "postgres", "ph") as scoped,
        api_server(stack, "postgres", scoped.prefix, processes=processes) as server,
    ):
        warm_up(server.url, scoped.token, WARM_UP_POSTS)
        client = TornadoClient(server.url, scoped.token)
        with contextlib.suppress(ApiError):  # opens the client's kept-alive connection
            client.get("none")
        meter = CpuMeter({"api": server.pid, **stack_groups(stack)})
        payloads: list[dict[str, Any]] = [{"message": message(i)} for i in range(count)]
        watch = Stopwatch(meter).start()
        if batch == 1:
            receipts = [client.submit(ECHO, payload) for payload in payloads]
        else:
            jobs = [{"task": ECHO, "payload": p} for p in payloads]
            receipts = client.submit_many(jobs, chunk=batch, parallel=parallel)
        watch.stop()
        client.close()
        refused = sum(1 for receipt in receipts if "error" in receipt)
        stored = scoped.stored() - WARM_UP_POSTS
    api_cpu = meter.used.get("api", 0.0)
    call = "submit() per job" if batch == 1 else f"submit_many(chunk={batch}): POST /v1/jobs:batch"
    server_note = "1 `tornado api` process" if processes == 1 else f"`tornado api --processes {processes}`"
    flight = (
        "one request at a time" if parallel == 1 else f"parallel={parallel}: {parallel} requests in flight"
    )
    note = (
        f"N={count}; TornadoClient.{call}, {flight}, {server_note}; refused {refused}, "
        f"queued afterwards {stored}; CPU = API {api_cpu / count * 1e6:.0f} + client "
        f"{watch.self_cpu / count * 1e6:.0f} us/job; 202 once the queue committed, job-store row "
        f"in the same commit; {_stack_note(meter, count)}"
    )
    system = SYSTEM + (" (HTTP)" if parallel == 1 else f" (HTTP, {parallel} in flight)")
    if processes != 1:
        system = system[:-1] + f", {processes} API processes)"
    return Result(system, measure, count, watch.seconds, api_cpu + watch.self_cpu, note)


def _stack_note(meter: CpuMeter, count: int) -> str:
    return (
        f"postgres {meter.used.get('postgres', 0.0) / count * 1e6:.0f} us/job ({meter.stack_cores()} cores)"
    )
