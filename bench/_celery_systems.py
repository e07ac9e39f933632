"""The systems of ``bench.celery_peers``: how each queues a job and starts its one worker process.

* Tornado (``tornado worker``, 16 threads) on PostgreSQL, SQS (moto) and its Celery engine on
  Redis and on RabbitMQ (quorum queues): jobs queued in-process as the API queues them
  (``Submitter.prepare`` then ``JobSender.send``: the message and the job's ``queued`` row, one
  commit on PostgreSQL).
* Celery 5 (``celery worker --pool threads --concurrency 16``) on Redis, on RabbitMQ (its default
  AMQP transport, a classic queue of its own) and on kombu's SQS transport (moto): jobs queued
  with ``send_task`` (one publish each).

Every system has its own queue (a unique name or prefix), dropped at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import boto3

from bench import _celery_app, _celery_tasks
from bench._celery_brokers import RedisServer
from bench._celery_rabbitmq import RabbitServer
from bench._common import BenchStack, child_env, new_tenant, spawn, unique
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services, task_registry
from tornado_core.naming import queue_spec
from tornado_core.producer.direct import JobSender, JobToSend
from tornado_core.producer.submission import Submitter
from tornado_core.settings import Settings


@dataclass(frozen=True)
class Worker:
    """A running worker process: its pid, a liveness check, its log's end, and how to stop it."""

    pid: int
    alive: Callable[[], bool]
    tail: Callable[[], str]
    stop: Callable[[], int]


class System(Protocol):
    """One row group of the table; every call blocks."""

    name: str
    broker: str

    def submit(self, index: int, seconds: float) -> None:
        """Queue job ``index`` (``sent`` = the clock just before the call)."""
        ...

    def prefill(self, count: int, seconds: float, first: int) -> None:
        """Queue jobs ``first .. first + count - 1`` (not timed)."""
        ...

    def start_worker(self, done_file: Path, concurrency: int) -> Worker:
        """Start the one worker process (``concurrency`` threads); it records its jobs in ``done_file``."""
        ...

    def describe(self, concurrency: int) -> str:
        """How the worker runs, for the table's note."""
        ...


def _payload(index: int, seconds: float, sent: float) -> dict[str, float | int]:
    return {"seconds": seconds, "sent": sent, "index": index}


class TornadoSystem:
    """Tornado's worker on one queue backend (``postgres``, ``sqs``, ``celery``)."""

    name = "tornado"

    def __init__(self, stack: BenchStack, backend: str, env: dict[str, str], broker: str) -> None:
        self.broker = broker
        self._stack, self._backend, self._env = stack, backend, env
        settings = Settings.load(env)
        self._services, self._close = build_services(
            settings, registry=task_registry([_celery_tasks.MODULE]), pool_size=4
        )
        services = self._services
        self._spec = queue_spec(settings.queue_prefix, services.registry.get(_celery_tasks.NAME))
        services.queue.ensure_queue(self._spec)
        self._tenant, _ = new_tenant(services, "cp")
        self._submitter = Submitter.for_services(services)
        self._sender = JobSender(services)

    def _prepared(self, index: int, seconds: float, sent: float) -> JobToSend:
        job = self._submitter.prepare(
            task=_celery_tasks.NAME, tenant=self._tenant, payload=_payload(index, seconds, sent)
        )
        return JobToSend(job)

    def submit(self, index: int, seconds: float) -> None:
        """``Submitter.prepare`` + ``JobSender.send`` of one job (what the API does for one POST)."""
        self._sender.send([self._prepared(index, seconds, time.time())])

    def prefill(self, count: int, seconds: float, first: int) -> None:
        """The jobs in the queue's send batches, their ``queued`` rows with them."""
        now = time.time()
        self._sender.send([self._prepared(i, seconds, now) for i in range(first, first + count)])

    def start_worker(self, done_file: Path, concurrency: int) -> Worker:
        """``tornado worker --task bench_celery.nap --concurrency C --poll-wait 1``."""
        env = {**self._env, _celery_tasks.DONE_FILE_ENV: str(done_file)}
        cluster = LocalCluster(env, self._stack.log_dir / f"tornado-{self._backend}-{secrets.token_hex(2)}")
        process = cluster.start_worker(
            _celery_tasks.NAME, concurrency=concurrency, extra=["--poll-wait", "1"], wait_ready=False
        )
        return Worker(process.pid, process.alive, process.log_tail, lambda: process.terminate(grace=20))

    def describe(self, concurrency: int) -> str:
        """The worker command."""
        return f"`tornado worker --concurrency {concurrency} --poll-wait 1`"

    def close(self) -> None:
        """Drop the queue and its DLQ, close the connections."""
        for name in (self._spec.name, self._spec.dead_letter_name):
            with contextlib.suppress(Exception):
                self._services.queue.delete_queue(name)
        stop_listener = getattr(self._services.queue, "close", None)
        if callable(stop_listener):
            stop_listener()
        self._close()


class CelerySystem:
    """A Celery worker (threads pool) on Redis or on kombu's SQS transport."""

    name = "celery"

    def __init__(self, stack: BenchStack, broker: str, url: str, *, sqs_queue_url: str | None = None) -> None:
        self.broker = broker
        self._stack, self._url, self._sqs_queue_url = stack, url, sqs_queue_url
        self.queue = sqs_queue_url.rsplit("/", 1)[1] if sqs_queue_url else unique("cel")
        self._app = _celery_app.make_app(url, self.queue, sqs_queue_url=sqs_queue_url)

    def submit(self, index: int, seconds: float) -> None:
        """``app.send_task`` of one job."""
        _celery_app.submit(self._app, self.queue, seconds, time.time(), index)

    def prefill(self, count: int, seconds: float, first: int) -> None:
        """``send_task`` per job (Celery has no batch publish)."""
        now = time.time()
        for index in range(first, first + count):
            _celery_app.submit(self._app, self.queue, seconds, now, index)

    def start_worker(self, done_file: Path, concurrency: int) -> Worker:
        """``python -m bench._celery_app``: ``celery worker --pool threads --concurrency C``."""
        tag = f"celery-{self.broker.split()[0]}-{secrets.token_hex(2)}"
        ready = self._stack.log_dir / f"{tag}.ready"
        args = ["bench._celery_app", "--broker", self._url, "--queue", self.queue]
        args += ["--concurrency", str(concurrency), "--ready-file", str(ready)]
        if self._sqs_queue_url:
            args += ["--sqs-queue-url", self._sqs_queue_url]
        env = child_env(self._stack.info.env(), **{_celery_tasks.DONE_FILE_ENV: str(done_file)})
        child = spawn(tag, args, env, self._stack.log_dir)
        return Worker(child.popen.pid, lambda: child.popen.poll() is None, child.tail, child.stop)

    def describe(self, concurrency: int) -> str:
        """The worker command and the durability settings."""
        return (
            f"`celery worker --pool threads --concurrency {concurrency}` (celery "
            f"{metadata.version('celery')}, kombu {metadata.version('kombu')}), acks_late, "
            "reject_on_worker_lost, no result backend"
        )

    def close(self) -> None:
        """Close the producer's connections (the queue is dropped by its owner)."""
        self._app.close()


@contextlib.contextmanager
def tornado_system(
    stack: BenchStack, backend: str, broker: RedisServer | RabbitServer | None = None
) -> Iterator[TornadoSystem]:
    """Tornado on ``postgres``, ``sqs`` or ``celery`` (on the Redis server or RabbitMQ node), fresh prefix."""
    env = stack.env(backend, unique("cp"))
    env.update(TORNADO_TASKS_MODULES=_celery_tasks.MODULE, TORNADO_LOG_LEVEL="WARNING")
    label = {"postgres": "postgres", "sqs": "sqs (moto)"}.get(backend, "")
    if isinstance(broker, RedisServer):
        env["TORNADO_BROKER_URL"], label = broker.url, "redis"
    elif isinstance(broker, RabbitServer):
        env.update(TORNADO_BROKER_URL=broker.url, TORNADO_BROKER_MANAGEMENT_URL=broker.management_url)
        label = "rabbitmq"
    system = TornadoSystem(stack, backend, env, label)
    try:
        yield system
    finally:
        system.close()
        if isinstance(broker, RedisServer):
            broker.client().flushdb()


@contextlib.contextmanager
def celery_redis(stack: BenchStack, redis: RedisServer) -> Iterator[CelerySystem]:
    """Celery on the Redis server (its keys flushed at the end)."""
    system = CelerySystem(stack, "redis", redis.url)
    try:
        yield system
    finally:
        system.close()
        redis.client().flushdb()


@contextlib.contextmanager
def celery_rabbitmq(stack: BenchStack, rabbit: RabbitServer) -> Iterator[CelerySystem]:
    """Celery on RabbitMQ (its default AMQP transport); its classic queue, named apart from Tornado's
    quorum queues, is dropped at the end."""
    system = CelerySystem(stack, "rabbitmq", rabbit.url)
    try:
        yield system
    finally:
        system.close()
        rabbit.delete_queue(system.queue)


@contextlib.contextmanager
def celery_sqs(stack: BenchStack) -> Iterator[CelerySystem]:
    """Celery on kombu's SQS transport, its queue created on the moto endpoint (deleted at the end)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=stack.info.aws_endpoint_url,
        region_name=_celery_app.REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    queue_url = sqs.create_queue(QueueName=unique("celsqs"))["QueueUrl"]
    system = CelerySystem(stack, "sqs (moto)", "sqs", sqs_queue_url=queue_url)
    try:
        yield system
    finally:
        system.close()
        with contextlib.suppress(Exception):
            sqs.delete_queue(QueueUrl=queue_url)
