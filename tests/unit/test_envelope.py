"""The job envelope on the wire: every field survives the round trip, nothing else is written."""

from __future__ import annotations

import json
from dataclasses import fields

from tornado_core.message import Envelope


def test_every_field_survives_the_round_trip() -> None:
    full = Envelope(
        job_id="01j0000000000000000000000000abcdefghij", task="nfe.emit", version="1.2.0", tenant="acme",
        payload={"nota": "ação", "itens": [1, 2]}, payload_ref="payloads/nfe.emit/x.json", submitted_at=1.5,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )  # fmt: skip
    text = full.to_json()
    assert set(json.loads(text)) == {f.name for f in fields(Envelope)}  # a new field must be written too
    assert Envelope.from_json(text) == full
    assert "ação" in text  # UTF-8 as is, not \\u escapes


def test_absent_optional_fields_are_left_out() -> None:
    bare = Envelope(job_id="j", task="t", version="1", tenant="acme", payload={"a": 1})
    assert set(json.loads(bare.to_json())) == {
        "job_id",
        "task",
        "version",
        "tenant",
        "payload",
        "submitted_at",
        "schema",
    }
    assert Envelope.from_json(bare.to_json()) == bare
