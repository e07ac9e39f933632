"""The job envelope on the wire: every field survives the round trip, nothing else is written."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from tornado_core.jsontext import compact
from tornado_core.message import Envelope, envelope_bodies


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


ODD_TEXT = ["plain", 'ação "quoted" \\ back\\slash', "tab\tand\nnewline", "\u2028 emoji \U0001f600", ""]


@pytest.mark.parametrize("traceparent", [None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"])
@pytest.mark.parametrize("submitted_at", [0.0, 1764530000.123456, 1e21])
def test_bodies_written_from_a_template_are_byte_for_byte_those_of_to_json(
    traceparent: str | None, submitted_at: float
) -> None:
    payloads = [{"text": text, "n": [1, 2.5, -3], "nested": {"k": text}} for text in ODD_TEXT]
    ids = [f"01j{i:033d}"[:36] for i in range(len(payloads))]
    for text in ODD_TEXT:
        bodies = envelope_bodies(
            job_ids=ids, payload_texts=[compact(p) for p in payloads], task=f"t.{text}", version=text,
            tenant=text, submitted_at=submitted_at, traceparent=traceparent,
        )  # fmt: skip
        expected = [
            Envelope(
                job_id=job_id,
                task=f"t.{text}",
                version=text,
                tenant=text,
                payload=payload,
                submitted_at=submitted_at,
                traceparent=traceparent,
            ).to_json()
            for job_id, payload in zip(ids, payloads, strict=True)
        ]
        assert bodies == expected


@pytest.mark.parametrize("job_id", ['a"b', "a\\b", "ação", "a b"])
def test_an_id_that_would_need_escaping_is_refused_by_the_template(job_id: str) -> None:
    with pytest.raises(ValueError, match="letters and digits"):
        envelope_bodies(
            job_ids=["ok1", job_id],
            payload_texts=["{}", "{}"],
            task="t",
            version="1",
            tenant="a",
            submitted_at=1.0,
        )
