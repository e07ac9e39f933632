"""Celery's task-message protocol v2 as kombu's Redis transport and AMQP carry it, with Tornado's envelope.

On Redis a message is the JSON object kombu pushes onto the queue's list: ``headers`` (``task``, ``id``,
``eta``...), ``properties`` and a base64 ``body`` holding ``[args, kwargs, embed]``; on AMQP the same
headers are the message's application headers and the body is the JSON ``[args, kwargs, embed]``. Tornado's
messages are the task :data:`TASK_NAME` with the envelope (the queue body, a JSON text) as its one
argument; ``app.send_task("tornado.run", args=[envelope])`` from any Celery app produces the same
thing, with the envelope as a text or as a JSON object.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from tornado_core.errors import EnvelopeInvalid

#: The Celery task name of every Tornado job.
TASK_NAME = "tornado.run"


@dataclass(frozen=True)
class CeleryMessage:
    """What Tornado reads from a broker message.

    Attributes:
        message_id: Celery's task id of the message (new for every message sent).
        body: The envelope as a JSON text (the queue port's body).
    """

    message_id: str
    body: str


@dataclass(frozen=True)
class CeleryTask:
    """Any Celery task-message (protocol v2, JSON), whatever its task.

    Attributes:
        name: The task's name (``headers["task"]``).
        task_id: Celery's task id (``headers["id"]``; "" when missing).
        args: Its positional arguments.
        kwargs: Its keyword arguments.
    """

    name: str
    task_id: str
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class AmqpMessage:
    """A Celery task-message as AMQP carries it (RabbitMQ).

    Attributes:
        body: The JSON ``[args, kwargs, embed]`` (UTF-8).
        headers: Celery's headers, sent as the AMQP application headers.
        properties: The AMQP basic properties (content type and encoding, correlation id = task id,
            delivery mode 2).
    """

    body: bytes
    headers: dict[str, Any]
    properties: dict[str, Any]


def _headers(task_id: str) -> dict[str, Any]:
    """Celery's protocol v2 headers of a ``tornado.run`` message."""
    return {
        "lang": "py", "task": TASK_NAME, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
        "parent_id": None, "argsrepr": "(...)", "kwargsrepr": "{}", "origin": "tornado",
        "ignore_result": True,
    }  # fmt: skip


def _payload(body: str) -> str:
    """The ``[args, kwargs, embed]`` of ``tornado.run(body)``."""
    return json.dumps([[body], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])


def encode_message(body: str, queue: str, *, message_id: str | None = None) -> str:
    """The broker message (kombu's JSON on Redis) of a task ``tornado.run(body)`` for ``queue``.

    Args:
        body: The envelope (any text: the queue port's body).
        queue: The queue (Celery's exchange and routing key of the same name).
        message_id: Celery's task id; a new UUID by default.
    """
    task_id = message_id or str(uuid.uuid4())
    return kombu_json(_payload(body).encode(), _headers(task_id), {"correlation_id": task_id}, queue)


def kombu_json(body: bytes, headers: dict[str, Any], properties: dict[str, Any], queue: str) -> str:
    """The JSON wrapper kombu's Redis transport stores for a message (what :func:`read_task` reads).

    Args:
        body: The serialized ``[args, kwargs, embed]``.
        headers: Celery's headers.
        properties: AMQP-style properties (``content_type``, ``content_encoding``, ``correlation_id``...).
        queue: The queue (exchange and routing key in ``delivery_info``).
    """
    extra = {k: v for k, v in properties.items() if k not in ("content_type", "content_encoding")}
    wrapped = {
        "correlation_id": "", "reply_to": "", "delivery_mode": 2, "priority": 0, **extra,
        "delivery_info": {"exchange": queue, "routing_key": queue},
        "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }  # fmt: skip
    message = {
        "body": base64.b64encode(body).decode("ascii"),
        "content-encoding": properties.get("content_encoding") or "utf-8",
        "content-type": properties.get("content_type") or "application/json",
        "headers": headers,
        "properties": wrapped,
    }
    return json.dumps(message, separators=(",", ":"), default=str)


def read_task(raw: str | bytes) -> CeleryTask:
    """Read any Celery message in kombu's JSON wrapper (from Redis, or handed over by either adapter).

    Raises:
        EnvelopeInvalid: Not a Celery protocol v2 JSON message.
    """
    try:
        message = json.loads(raw)
        headers = message["headers"]
        content = _content(message)
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeInvalid(f"not a Celery message in JSON: {exc}") from exc
    return _task(headers, content)


def decode_message(raw: str | bytes) -> CeleryMessage:
    """Read a broker message written by :func:`encode_message` or by any Celery app's ``send_task``.

    Raises:
        EnvelopeInvalid: Not a Celery protocol v2 JSON message of the task ``tornado.run`` with one
            argument.
    """
    return _tornado_message(read_task(raw))


def encode_amqp(body: str, *, message_id: str | None = None) -> AmqpMessage:
    """The AMQP message of a task ``tornado.run(body)``, as Celery's own AMQP transport sends it.

    Args:
        body: The envelope (any text: the queue port's body).
        message_id: Celery's task id; a new UUID by default.
    """
    task_id = message_id or str(uuid.uuid4())
    properties = {
        "content_type": "application/json", "content_encoding": "utf-8", "correlation_id": task_id,
        "delivery_mode": 2, "priority": 0,
    }  # fmt: skip
    return AmqpMessage(body=_payload(body).encode(), headers=_headers(task_id), properties=properties)


def read_amqp_task(body: bytes, headers: dict[str, Any], properties: dict[str, Any]) -> CeleryTask:
    """Read any Celery task-message received over AMQP.

    Raises:
        EnvelopeInvalid: Not a Celery protocol v2 JSON message.
    """
    _require_json(properties.get("content_type", "application/json"))
    try:
        content = json.loads(body)
    except ValueError as exc:
        raise EnvelopeInvalid(f"not a Celery message in JSON: {exc}") from exc
    if not isinstance(headers, dict) or "task" not in headers:
        raise EnvelopeInvalid("not a Celery protocol v2 message (no task header)")
    return _task(headers, content)


def decode_amqp(body: bytes, headers: dict[str, Any], properties: dict[str, Any]) -> CeleryMessage:
    """Read a ``tornado.run`` message received over AMQP (written by :func:`encode_amqp` or ``send_task``).

    Raises:
        EnvelopeInvalid: Not a Celery protocol v2 JSON message of the task ``tornado.run`` with one
            argument.
    """
    return _tornado_message(read_amqp_task(body, headers, properties))


def _task(headers: dict[str, Any], content: Any) -> CeleryTask:
    parts = content if isinstance(content, list) else []
    args, kwargs = (parts[0] if parts else None), (parts[1] if len(parts) > 1 else {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise EnvelopeInvalid(f"not a Celery protocol v2 body ([args, kwargs, embed]): {content!r:.200}")
    return CeleryTask(
        name=str(headers.get("task") or ""), task_id=str(headers.get("id") or ""), args=args, kwargs=kwargs
    )


def _tornado_message(task: CeleryTask) -> CeleryMessage:
    if task.name != TASK_NAME:
        raise EnvelopeInvalid(f"a Celery message of task {task.name!r}, not {TASK_NAME!r}")
    if len(task.args) != 1:
        raise EnvelopeInvalid(f"{TASK_NAME} takes one argument (the envelope), not {task.args!r}")
    envelope = task.args[0]
    body = envelope if isinstance(envelope, str) else json.dumps(envelope, separators=(",", ":"))
    return CeleryMessage(message_id=task.task_id, body=body)


def _content(message: dict[str, Any]) -> Any:
    """The ``[args, kwargs, embed]`` of a message, its body decoded (base64 when kombu says so)."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    _require_json(message.get("content-type", "application/json"))
    return json.loads(body) if isinstance(body, str | bytes) else body


def _require_json(content_type: Any) -> None:
    """Refuse a message body that is not JSON (pickle above all).

    Raises:
        EnvelopeInvalid: Another content type.
    """
    if content_type != "application/json":
        raise EnvelopeInvalid(f"content type {content_type!r} (send JSON: Tornado never unpickles)")
