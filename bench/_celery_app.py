"""The Celery side of ``bench.celery_peers``: the app (Redis, RabbitMQ, SQS) and, as a module, its worker.

    python -m bench._celery_app --broker redis://127.0.0.1:PORT/0 --queue Q --concurrency 16 \\
        --ready-file /tmp/x.ready [--sqs-queue-url http://127.0.0.1:PORT/123456789012/Q]

The app is as durable as Celery gets: ``task_acks_late`` (a message is acknowledged after
its task returns, not when the worker takes it) and ``task_reject_on_worker_lost`` (a task
whose worker process died goes back to the queue), JSON only, no result backend. The
worker runs ``--pool threads`` (the same threads-in-one-process model as Tornado's
worker) without gossip, mingle and the event heartbeat (cluster chatter, not job work).
On RabbitMQ (``amqp://``: Celery's default py-amqp transport) the queue is the classic durable
queue Celery declares, prefetch 4 per thread (Celery's default). On SQS (kombu's own transport,
asynchronous receive through pycurl) the queue is a ``predefined_queues`` entry on the moto
endpoint, long-polled 1 s like Tornado's worker.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import Celery, signals  # type: ignore[import-untyped]

from bench._celery_tasks import NAME, nap

#: Long poll of the SQS receive, seconds (Tornado's worker runs with ``--poll-wait 1``).
SQS_WAIT_SECONDS = 1
#: Region of the moto endpoint (any: moto keeps one per region).
REGION = "us-east-1"


def sqs_broker(queue: str, queue_url: str) -> tuple[str, dict[str, Any]]:
    """The broker URL and transport options of kombu's SQS transport for one predefined moto queue."""
    endpoint = urlsplit(queue_url)
    options = {
        "region": REGION,
        "is_secure": False,
        "wait_time_seconds": SQS_WAIT_SECONDS,
        "polling_interval": 0,
        "visibility_timeout": 60,
        "predefined_queues": {
            queue: {"url": queue_url, "access_key_id": "test", "secret_access_key": "test"}
        },
    }
    return f"sqs://test:test@{endpoint.hostname}:{endpoint.port}", options


def make_app(broker: str, queue: str, *, sqs_queue_url: str | None = None) -> Celery:
    """Celery app on ``broker`` (``redis://``, ``amqp://``, ``sqs``): its task goes to ``queue``."""
    options: dict[str, Any] = {}
    if sqs_queue_url is not None:
        broker, options = sqs_broker(queue, sqs_queue_url)
    app = Celery("bench_celery", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=queue,
        task_ignore_result=True,
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # SQS has no fanout exchange for remote control (the pidbox); Redis keeps Celery's default.
        worker_enable_remote_control=sqs_queue_url is None,
    )

    @app.task(name=NAME)  # type: ignore[untyped-decorator]
    def celery_nap(seconds: float, sent: float, index: int) -> None:
        nap(seconds, sent, index)

    return app


def submit(app: Celery, queue: str, seconds: float, sent: float, index: int) -> None:
    """Queue one job the ordinary way (``send_task``: one publish)."""
    app.send_task(NAME, args=[seconds, sent, index], queue=queue)


def main() -> None:
    """Command line of the worker child: builds the app, touches the ready file when consuming."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--sqs-queue-url")
    args = parser.parse_args()
    app = make_app(args.broker, args.queue, sqs_queue_url=args.sqs_queue_url)

    def ready(**_: Any) -> None:
        args.ready_file.touch()

    signals.worker_ready.connect(ready, weak=False)
    app.worker_main(
        [
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(args.concurrency),
            "--queues",
            args.queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ]
    )


if __name__ == "__main__":
    main()
