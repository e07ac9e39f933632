"""Celery's task-message protocol v2 as kombu's Redis transport stores it, carrying Tornado's envelope.

A message is the JSON object kombu pushes onto the queue's list: ``headers`` (``task``, ``id``,
``eta``...), ``properties`` and a base64 ``body`` holding ``[args, kwargs, embed]``. Tornado's
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


def encode_message(body: str, queue: str, *, message_id: str | None = None) -> str:
    """The broker message (kombu's JSON on Redis) of a task ``tornado.run(body)`` for ``queue``.

    Args:
        body: The envelope (any text: the queue port's body).
        queue: The queue (Celery's exchange and routing key of the same name).
        message_id: Celery's task id; a new UUID by default.
    """
    task_id = message_id or str(uuid.uuid4())
    payload = json.dumps([[body], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    headers = {
        "lang": "py", "task": TASK_NAME, "id": task_id, "shadow": None, "eta": None, "expires": None,
        "group": None, "group_index": None, "retries": 0, "timelimit": [None, None], "root_id": task_id,
        "parent_id": None, "argsrepr": "(...)", "kwargsrepr": "{}", "origin": "tornado",
        "ignore_result": True,
    }  # fmt: skip
    properties = {
        "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
        "delivery_info": {"exchange": queue, "routing_key": queue}, "priority": 0,
        "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
    }  # fmt: skip
    message = {
        "body": base64.b64encode(payload.encode()).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": properties,
    }
    return json.dumps(message, separators=(",", ":"))


def decode_message(raw: str | bytes) -> CeleryMessage:
    """Read a broker message written by :func:`encode_message` or by any Celery app's ``send_task``.

    Raises:
        EnvelopeInvalid: Not a Celery protocol v2 JSON message of the task ``tornado.run`` with one
            argument.
    """
    try:
        message = json.loads(raw)
        headers = message["headers"]
        content = _content(message)
    except (ValueError, KeyError, TypeError) as exc:
        raise EnvelopeInvalid(f"not a Celery message in JSON: {exc}") from exc
    if headers.get("task") != TASK_NAME:
        raise EnvelopeInvalid(f"a Celery message of task {headers.get('task')!r}, not {TASK_NAME!r}")
    args = content[0] if isinstance(content, list) and content else None
    if not isinstance(args, list) or len(args) != 1:
        raise EnvelopeInvalid(f"{TASK_NAME} takes one argument (the envelope), not {args!r}")
    envelope = args[0]
    body = envelope if isinstance(envelope, str) else json.dumps(envelope, separators=(",", ":"))
    return CeleryMessage(message_id=str(headers.get("id") or ""), body=body)


def _content(message: dict[str, Any]) -> Any:
    """The ``[args, kwargs, embed]`` of a message, its body decoded (base64 when kombu says so)."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    if message.get("content-type", "application/json") != "application/json":
        raise ValueError(f"content type {message.get('content-type')!r} (send JSON: Tornado never unpickles)")
    return json.loads(body) if isinstance(body, str | bytes) else body
