"""The Celery engine's message format: Celery's task-message protocol v2 carrying Tornado's envelope."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from celery import Celery

from tornado_core.adapters.celery.protocol import TASK_NAME, decode_message, encode_message
from tornado_core.errors import EnvelopeInvalid
from tornado_core.message import Envelope

ENVELOPE = Envelope(job_id="j-1", task="demo.echo", version="1.0.0", tenant="acme", payload={"message": "oi"})


def _sent_by_celery(args: list[Any], queue: str, **options: Any) -> str:
    """The broker message a plain Celery app's ``send_task`` writes (kombu's in-memory transport)."""
    app = Celery("django_shop", broker="memory://", set_as_current=False)
    app.send_task(TASK_NAME, args=args, queue=queue, **options)
    with app.connection() as connection:
        message = connection.default_channel._get(queue)
    return json.dumps(message)


def test_a_tornado_message_is_a_celery_task_message_with_the_envelope_as_its_one_argument() -> None:
    raw = json.loads(encode_message(ENVELOPE.to_json(), "tornado-demo-echo-1-0-0", message_id="m-1"))
    assert raw["headers"]["task"] == "tornado.run"
    assert raw["headers"]["id"] == raw["headers"]["root_id"] == "m-1"
    assert raw["content-type"] == "application/json"
    assert raw["properties"]["delivery_info"]["routing_key"] == "tornado-demo-echo-1-0-0"
    args, kwargs, _embed = json.loads(base64.b64decode(raw["body"]))
    assert (args, kwargs) == ([ENVELOPE.to_json()], {})


def test_what_tornado_writes_reads_back_as_the_same_body_and_id() -> None:
    message = decode_message(encode_message("any text", "q", message_id="m-2"))
    assert (message.message_id, message.body) == ("m-2", "any text")


def test_each_message_gets_its_own_id() -> None:
    ids = {decode_message(encode_message("x", "q")).message_id for _ in range(3)}
    assert len(ids) == 3


@pytest.mark.parametrize("as_object", [False, True])
def test_send_task_of_a_plain_celery_app_is_accepted(as_object: bool) -> None:
    argument: Any = json.loads(ENVELOPE.to_json()) if as_object else ENVELOPE.to_json()
    queue = f"q-{uuid.uuid4().hex[:6]}"
    message = decode_message(_sent_by_celery([argument], queue))
    assert Envelope.from_json(message.body) == ENVELOPE
    assert message.message_id


def test_another_task_is_refused() -> None:
    raw = _sent_by_celery([ENVELOPE.to_json()], "q-other").replace("tornado.run", "shop.send_invoice")
    with pytest.raises(EnvelopeInvalid, match=r"shop\.send_invoice"):
        decode_message(raw)


def test_a_task_with_other_arguments_is_refused() -> None:
    with pytest.raises(EnvelopeInvalid, match="one argument"):
        decode_message(_sent_by_celery([ENVELOPE.to_json(), "extra"], "q-args"))


def test_pickle_and_garbage_are_refused() -> None:
    pickled = json.loads(encode_message("x", "q"))
    pickled["content-type"] = "application/x-python-serialize"
    with pytest.raises(EnvelopeInvalid, match="never unpickles"):
        decode_message(json.dumps(pickled))
    with pytest.raises(EnvelopeInvalid):
        decode_message("not json")
