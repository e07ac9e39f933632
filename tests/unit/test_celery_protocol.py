"""The Celery engine's message format: Celery's task-message protocol v2 carrying Tornado's envelope."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from celery import Celery

from tornado_core.adapters.celery.protocol import (
    TASK_NAME,
    decode_amqp,
    decode_message,
    encode_amqp,
    encode_message,
    kombu_json,
    read_amqp_task,
    read_task,
)
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


def _as_amqp(raw: str) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Body, application headers and properties of a kombu JSON message, as AMQP would carry them."""
    message = json.loads(raw)
    properties = {"content_type": message["content-type"], "content_encoding": message["content-encoding"]}
    properties["correlation_id"] = message["properties"]["correlation_id"]
    return base64.b64decode(message["body"]), message["headers"], properties


def test_the_amqp_message_is_celerys_task_message_with_the_envelope_as_its_one_argument() -> None:
    message = encode_amqp(ENVELOPE.to_json(), message_id="m-3")
    assert (message.headers["task"], message.headers["id"], message.properties["correlation_id"]) == (
        "tornado.run", "m-3", "m-3",
    )  # fmt: skip
    assert (message.properties["content_type"], message.properties["delivery_mode"]) == (
        "application/json",
        2,
    )
    args, kwargs, _embed = json.loads(message.body)
    assert (args, kwargs) == ([ENVELOPE.to_json()], {})
    decoded = decode_amqp(message.body, message.headers, message.properties)
    assert (decoded.message_id, decoded.body) == ("m-3", ENVELOPE.to_json())


def test_send_task_of_a_plain_celery_app_is_read_from_its_amqp_parts() -> None:
    body, headers, properties = _as_amqp(_sent_by_celery([json.loads(ENVELOPE.to_json())], "q-amqp"))
    assert Envelope.from_json(decode_amqp(body, headers, properties).body) == ENVELOPE


def test_any_task_read_over_amqp_and_handed_over_in_kombu_json_reads_back_the_same() -> None:
    raw = _sent_by_celery(["demo.echo"], "q-any").replace("tornado.run", "tornado.submit")
    body, headers, properties = _as_amqp(raw)
    task = read_amqp_task(body, headers, properties)
    assert (task.name, task.args, task.kwargs) == ("tornado.submit", ["demo.echo"], {})
    assert read_task(kombu_json(body, headers, properties, "q-any")) == task
    assert read_task(raw) == task


def test_a_pickled_or_headerless_amqp_message_is_refused() -> None:
    message = encode_amqp("x")
    with pytest.raises(EnvelopeInvalid, match="never unpickles"):
        read_amqp_task(message.body, message.headers, {"content_type": "application/x-python-serialize"})
    with pytest.raises(EnvelopeInvalid, match="no task header"):
        read_amqp_task(message.body, {}, message.properties)
    with pytest.raises(EnvelopeInvalid, match=r"shop\.invoice"):
        decode_amqp(message.body, {**message.headers, "task": "shop.invoice"}, message.properties)
