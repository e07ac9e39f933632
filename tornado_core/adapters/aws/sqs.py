"""The Amazon SQS queue adapter (also runs against the local moto endpoint)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from tornado_core.adapters.aws.errors import error_code
from tornado_core.errors import QueueUnavailable
from tornado_core.ports.queue import OutgoingMessage, QueueDepth, QueueSpec, ReceivedMessage

T = TypeVar("T")

#: Error codes SQS uses for a queue that does not exist (query and JSON protocols).
_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
#: Longest long poll SQS accepts, in seconds.
MAX_WAIT_SECONDS = 20
#: Most messages one receive returns.
MAX_RECEIVE = 10
#: Longest send delay SQS accepts, in seconds.
MAX_DELAY_SECONDS = 900
#: Longest visibility timeout SQS accepts, in seconds (12 hours).
MAX_VISIBILITY_SECONDS = 43_200


class SqsQueue:
    """:class:`tornado_core.ports.queue.QueuePort` on Amazon SQS.

    Seconds are rounded up to whole seconds, as SQS only takes integers.

    Args:
        client: A boto3 SQS client (see :func:`tornado_core.adapters.aws.clients.make_client`).
        poll_client: The client of long polls (receives), with a read timeout above 20 s;
            ``client`` by default.
    """

    max_send_batch = 10
    #: SendMessageBatch's limit on the sum of the message sizes (1 MiB).
    max_send_batch_bytes = 1_048_576
    max_receive_batch = MAX_RECEIVE

    def __init__(self, client: Any, *, poll_client: Any = None) -> None:
        self._client = client
        self._poll_client = poll_client if poll_client is not None else client
        self._urls: dict[str, str] = {}
        self._fair: set[str] = set()  # queues whose messages carry their group (SQS fair queues)
        self._lock = threading.Lock()

    def ensure_queue(self, spec: QueueSpec) -> None:
        """Create the DLQ, then the queue with its redrive policy; idempotent.

        A fair queue's messages are sent with their group as ``MessageGroupId``: SQS fair queues
        then keep one group's backlog from delaying the others.
        """
        if spec.fair:
            self._fair.add(spec.name)
        dlq_url = self._create(spec.dead_letter_name, {})
        with self._call(spec.dead_letter_name):
            arn = self._client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
        wanted = {
            "VisibilityTimeout": str(_seconds(spec.visibility_timeout, MAX_VISIBILITY_SECONDS)),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": arn, "maxReceiveCount": spec.max_receive_count}
            ),
        }
        url = self._create(spec.name, wanted)
        with self._call(spec.name):
            current = self._client.get_queue_attributes(QueueUrl=url, AttributeNames=list(wanted)).get(
                "Attributes", {}
            )
        if _differs(current, wanted):
            with self._call(spec.name):
                self._client.set_queue_attributes(QueueUrl=url, Attributes=wanted)

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages; a missing queue is not an error."""
        try:
            url = self._url(name)
            with self._call(name):
                self._client.delete_queue(QueueUrl=url)
        except QueueUnavailable as exc:
            if not isinstance(exc.__cause__, ClientError) or not _is_missing(exc.__cause__):
                raise
        finally:
            with self._lock:
                self._urls.pop(name, None)

    def send_batch(self, queue: str, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Send up to ten messages in one SendMessageBatch call.

        Returns:
            For each message, ``None`` if SQS stored it, else the error text.
        """
        if not messages:
            return []
        if len(messages) > self.max_send_batch:
            raise ValueError(f"at most {self.max_send_batch} messages per batch, not {len(messages)}")
        fair = queue in self._fair
        entries = [_entry(index, message, fair) for index, message in enumerate(messages)]
        response = self._with_url(
            queue, lambda url: self._client.send_message_batch(QueueUrl=url, Entries=entries)
        )
        results: list[str | None] = [None] * len(messages)
        answered = {entry["Id"] for entry in response.get("Successful", [])}
        for failure in response.get("Failed", []):
            results[int(failure["Id"])] = f"{failure.get('Code')}: {failure.get('Message', '')}"
            answered.add(failure["Id"])
        for index in range(len(messages)):
            if str(index) not in answered:
                results[index] = "no answer from SQS for this message"
        return results

    def receive(
        self, queue: str, *, max_messages: int, wait_seconds: float, visibility_timeout: float
    ) -> list[ReceivedMessage]:
        """Long-poll (at most 20 s) for up to ten visible messages."""
        response = self._with_url(
            queue,
            lambda url: self._poll_client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=max(1, min(max_messages, MAX_RECEIVE)),
                WaitTimeSeconds=_seconds(wait_seconds, MAX_WAIT_SECONDS),
                VisibilityTimeout=_seconds(visibility_timeout, MAX_VISIBILITY_SECONDS),
                AttributeNames=["ApproximateReceiveCount"],
            ),
        )
        return [
            ReceivedMessage(
                message_id=raw["MessageId"],
                body=raw["Body"],
                receipt=raw["ReceiptHandle"],
                receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1)),
            )
            for raw in response.get("Messages", [])
        ]

    def delete(self, queue: str, receipts: Sequence[str]) -> None:
        """Acknowledge delivered messages, ten per DeleteMessageBatch call.

        Receipts SQS no longer knows (the message was redelivered or already
        deleted) are ignored, as acknowledging twice is harmless.
        """
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            response = self._delete_batch(queue, entries)
            failed = [f for f in response.get("Failed", []) if f.get("SenderFault") is False]
            if failed:
                raise QueueUnavailable(f"SQS could not delete from {queue}: {failed[0].get('Message')}")

    def _delete_batch(self, queue: str, entries: list[dict[str, str]]) -> Any:
        return self._with_url(
            queue, lambda url: self._client.delete_message_batch(QueueUrl=url, Entries=entries)
        )

    def change_visibility(self, queue: str, receipt: str, timeout: float) -> None:
        """Hide a delivered message for ``timeout`` more seconds (0 shows it now)."""
        self._with_url(
            queue,
            lambda url: self._client.change_message_visibility(
                QueueUrl=url,
                ReceiptHandle=receipt,
                VisibilityTimeout=_seconds(timeout, MAX_VISIBILITY_SECONDS),
            ),
        )

    def depth(self, queue: str) -> QueueDepth:
        """Approximate visible, in-flight and delayed counts."""
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        response = self._with_url(
            queue, lambda url: self._client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
        )
        attributes = response.get("Attributes", {})
        visible, in_flight, delayed = (int(attributes.get(name, 0)) for name in names)
        return QueueDepth(visible=visible, in_flight=in_flight, delayed=delayed)

    def ping(self) -> None:
        """Raise ``QueueUnavailable`` unless SQS answers a ListQueues call."""
        with self._call("(ping)"):
            self._client.list_queues(MaxResults=1)

    def _create(self, name: str, attributes: dict[str, str]) -> str:
        with self._call(name):
            try:
                url = str(self._client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
            except ClientError as exc:
                if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
                    raise
                url = str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        with self._lock:
            self._urls[name] = url
        return url

    def _url(self, name: str) -> str:
        with self._lock:
            cached = self._urls.get(name)
        if cached is not None:
            return cached
        with self._call(name):
            url = str(self._client.get_queue_url(QueueName=name)["QueueUrl"])
        with self._lock:
            self._urls[name] = url
        return url

    def _with_url(self, queue: str, call: Callable[[str], T]) -> T:
        url = self._url(queue)
        with self._call(queue):
            return call(url)

    @contextmanager
    def _call(self, queue: str) -> Iterator[None]:
        """Translate botocore failures into :class:`QueueUnavailable`."""
        try:
            yield
        except ClientError as exc:
            if _is_missing(exc):
                with self._lock:
                    self._urls.pop(queue, None)
                raise QueueUnavailable(f"queue {queue} does not exist") from exc
            raise QueueUnavailable(f"SQS refused the call on queue {queue}: {_describe(exc)}") from exc
        except BotoCoreError as exc:
            raise QueueUnavailable(f"SQS is unreachable (queue {queue}): {exc}") from exc


def _seconds(value: float, limit: int) -> int:
    """Whole seconds SQS accepts: rounded up, clamped to ``0..limit``."""
    return max(0, min(limit, math.ceil(value)))


def _is_missing(exc: ClientError) -> bool:
    return error_code(exc) in _MISSING_QUEUE_CODES


def _describe(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()


def _differs(current: dict[str, str], wanted: dict[str, str]) -> bool:
    if current.get("VisibilityTimeout") != wanted["VisibilityTimeout"]:
        return True
    return _redrive(current.get("RedrivePolicy")) != _redrive(wanted["RedrivePolicy"])


def _redrive(raw: str | None) -> tuple[str, int] | None:
    """The (target ARN, max receive count) of a RedrivePolicy; ``None`` if unreadable."""
    try:
        policy = json.loads(raw or "")
        return str(policy["deadLetterTargetArn"]), int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        return None


def _entry(index: int, message: OutgoingMessage, fair: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Id": str(index),
        "MessageBody": message.body,
        "DelaySeconds": _seconds(message.delay, MAX_DELAY_SECONDS),
    }
    if fair and message.group:
        entry["MessageGroupId"] = message.group[:128]
    return entry
