"""SqsQueue specifics beyond the shared contract (tests/integration/test_queue_contract.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.stub import Stubber

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.sqs import SqsQueue
from tornado_core.adapters.memory.jobs import MemoryJobStore
from tornado_core.errors import QueueUnavailable
from tornado_core.local_machine import free_port
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.queue import OutgoingMessage, QueueSpec
from tornado_core.producer.batching import SendBatcher
from tornado_core.producer.recording import QueuedRecorder


@pytest.fixture
def client(aws_endpoint_url: str) -> Any:
    return make_client("sqs", region="us-east-1", endpoint_url=aws_endpoint_url)


@pytest.fixture
def spec(client: Any, unique_prefix: str) -> Iterator[QueueSpec]:
    queue_spec = QueueSpec(
        name=f"{unique_prefix}-sqs",
        dead_letter_name=f"{unique_prefix}-sqs-dlq",
        max_receive_count=4,
        visibility_timeout=30,
    )
    yield queue_spec
    queue = SqsQueue(client)
    queue.delete_queue(queue_spec.name)
    queue.delete_queue(queue_spec.dead_letter_name)


def attributes(client: Any, name: str) -> dict[str, str]:
    url = client.get_queue_url(QueueName=name)["QueueUrl"]
    return dict(client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"])


def test_ensure_queue_sets_redrive_and_visibility_and_updates_them(client: Any, spec: QueueSpec) -> None:
    queue = SqsQueue(client)
    queue.ensure_queue(spec)
    attrs = attributes(client, spec.name)
    dlq_arn = attributes(client, spec.dead_letter_name)["QueueArn"]
    assert attrs["VisibilityTimeout"] == "30"
    policy = json.loads(attrs["RedrivePolicy"])
    assert (policy["deadLetterTargetArn"], int(policy["maxReceiveCount"])) == (dlq_arn, 4)

    changed = QueueSpec(
        name=spec.name, dead_letter_name=spec.dead_letter_name, max_receive_count=7, visibility_timeout=12.5
    )
    SqsQueue(client).ensure_queue(changed)
    attrs = attributes(client, spec.name)
    assert attrs["VisibilityTimeout"] == "13"  # whole seconds, rounded up
    assert int(json.loads(attrs["RedrivePolicy"])["maxReceiveCount"]) == 7


def test_queue_url_is_looked_up_once_per_name(client: Any, spec: QueueSpec) -> None:
    SqsQueue(client).ensure_queue(spec)
    calls: list[str] = []
    client.meta.events.register("before-call.sqs.GetQueueUrl", lambda **kw: calls.append("url"))
    queue = SqsQueue(client)
    for _ in range(3):
        queue.send_batch(spec.name, [OutgoingMessage("x")])
        queue.depth(spec.name)
    assert calls == ["url"]


def test_receive_clamps_to_sqs_limits_and_reports_receive_count(client: Any, spec: QueueSpec) -> None:
    queue = SqsQueue(client)
    queue.ensure_queue(spec)
    queue.send_batch(spec.name, [OutgoingMessage(f"m{i}") for i in range(10)])
    got = queue.receive(spec.name, max_messages=50, wait_seconds=0.2, visibility_timeout=0.5)
    assert 1 <= len(got) <= 10
    assert all(m.receive_count == 1 for m in got)


def test_more_than_a_batch_is_refused(client: Any) -> None:
    with pytest.raises(ValueError, match="at most 10"):
        SqsQueue(client).send_batch("any", [OutgoingMessage("x")] * 11)
    assert SqsQueue(client).send_batch("any", []) == []


def test_unreachable_endpoint_is_queue_unavailable() -> None:
    dead = make_client("sqs", region="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}")
    queue = SqsQueue(dead)
    with pytest.raises(QueueUnavailable, match="SQS is unreachable"):
        queue.ping()
    with pytest.raises(QueueUnavailable, match="SQS is unreachable"):
        queue.send_batch("jobs", [OutgoingMessage("x")])


def test_missing_queue_says_so(client: Any, unique_prefix: str) -> None:
    with pytest.raises(QueueUnavailable, match=f"queue {unique_prefix}-nope does not exist"):
        SqsQueue(client).depth(f"{unique_prefix}-nope")


def test_per_entry_failures_come_back_as_error_texts() -> None:
    client = make_client("sqs", region="us-east-1", endpoint_url="http://127.0.0.1:9", credentials=("a", "b"))
    queue = SqsQueue(client)
    with Stubber(client) as stub:
        stub.add_response("get_queue_url", {"QueueUrl": "http://q/jobs"}, {"QueueName": "jobs"})
        stub.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
                "Failed": [
                    {
                        "Id": "1",
                        "Code": "InvalidMessageContents",
                        "SenderFault": True,
                        "Message": "bad character",
                    }
                ],
            },
        )
        results = queue.send_batch("jobs", [OutgoingMessage(b) for b in ("ok", "bad", "lost")])
    assert results[0] is None
    assert results[1] == "InvalidMessageContents: bad character"
    assert results[2] is not None


def _job(n: int) -> NewJob:
    return NewJob(job_id=f"job-{n}", tenant="acme", task="demo.echo", version="1.0.0", submitted_at=1.0)


def test_concurrent_large_sends_fit_sendmessagebatch_limit(client: Any, spec: QueueSpec) -> None:
    """Ten ~150 KB messages (under the claim check) at once: each SQS batch stays under 1 MiB."""
    queue = SqsQueue(client)
    queue.ensure_queue(spec)
    bodies = [json.dumps({"n": n, "blob": "x" * 150_000}) for n in range(10)]

    async def send_all() -> list[str | None]:
        with ThreadPoolExecutor(4) as executor:
            batcher = SendBatcher(queue, executor, QueuedRecorder(MemoryJobStore(), executor))
            sends = (batcher.send_many(spec.name, [(body, _job(n))]) for n, body in enumerate(bodies))
            return list(await asyncio.gather(*sends))

    outcomes = asyncio.run(send_all())

    assert outcomes == [[None]] * 10
    received: set[int] = set()
    while len(received) < 10:
        got = queue.receive(spec.name, max_messages=10, wait_seconds=1, visibility_timeout=30)
        assert got, f"only {len(received)} of 10 messages arrived"
        received.update(json.loads(m.body)["n"] for m in got)
    assert received == set(range(10))
