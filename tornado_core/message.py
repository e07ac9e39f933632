"""The job envelope: what travels on the queue, as versioned JSON (never pickle)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado_core.errors import EnvelopeInvalid
from tornado_core.jsontext import compact

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True, init=False)
class Envelope:
    """One job on the wire.

    Attributes:
        job_id: Unique id, also the handler's idempotency key.
        task: Task name, e.g. ``"nfe.emit"``.
        version: The task version the job was routed to (it stays pinned).
        tenant: The submitting tenant.
        payload: The JSON payload, or ``None`` when it was claim-checked.
        payload_ref: Object-store key of a claim-checked payload.
        submitted_at: Epoch seconds when the API accepted the job.
        schema: Envelope schema version.
        traceparent: The W3C ``traceparent`` of the span that queued the job (docs/observability.md),
            which parents the worker's span; ``None`` (left out of the JSON) when nothing was traced.
    """

    job_id: str
    task: str
    version: str
    tenant: str
    payload: dict[str, Any] | None = None
    payload_ref: str | None = None
    submitted_at: float = 0.0
    schema: int = field(default=SCHEMA_VERSION)
    traceparent: str | None = None

    def __init__(
        self,
        *,
        job_id: str,
        task: str,
        version: str,
        tenant: str,
        payload: dict[str, Any] | None = None,
        payload_ref: str | None = None,
        submitted_at: float = 0.0,
        schema: int = SCHEMA_VERSION,
        traceparent: str | None = None,
    ) -> None:
        # Written by hand: the frozen dataclass's own __init__ sets each field through
        # object.__setattr__, four times the cost, and every job queued and received makes one.
        # Frozen all the same: assigning a field afterwards raises FrozenInstanceError.
        self.__dict__.update(
            job_id=job_id, task=task, version=version, tenant=tenant, payload=payload,
            payload_ref=payload_ref, submitted_at=submitted_at, schema=schema, traceparent=traceparent,
        )  # fmt: skip

    def to_json(self) -> str:
        """Serialise to compact JSON."""
        # Shallow on purpose: ``asdict`` would deep-copy the payload just to serialise it. Every
        # field is listed (tests/unit/test_envelope.py checks it), faster than ``fields()``; the
        # optional ones only when set, in the same order.
        data: dict[str, Any] = {"job_id": self.job_id, "task": self.task, "version": self.version}
        data["tenant"] = self.tenant
        if self.payload is not None:
            data["payload"] = self.payload
        if self.payload_ref is not None:
            data["payload_ref"] = self.payload_ref
        data["submitted_at"] = self.submitted_at
        data["schema"] = self.schema
        if self.traceparent is not None:
            data["traceparent"] = self.traceparent
        return compact(data)

    @classmethod
    def from_json(cls, text: str) -> Envelope:
        """Parse an envelope.

        Raises:
            EnvelopeInvalid: Not JSON, not an object, a newer schema, or fields missing.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EnvelopeInvalid(f"message body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise EnvelopeInvalid("message body is not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise EnvelopeInvalid(f"unsupported envelope schema {schema!r}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise EnvelopeInvalid(f"malformed envelope: {exc}") from exc


def envelope_bodies(
    *,
    job_ids: Sequence[str],
    payload_texts: Sequence[str],
    task: str,
    version: str,
    tenant: str,
    submitted_at: float,
    traceparent: str | None = None,
) -> list[str]:
    """The bodies of envelopes alike but for their job id and payload, as :meth:`Envelope.to_json`
    writes each, without building the envelopes (a batch of jobs of one task version).

    Args:
        job_ids: The jobs' ids, as :class:`~tornado_core.job_ids.JobIds` issues them (ASCII letters
            and digits: nothing to escape).
        payload_texts: Each job's payload as :func:`~tornado_core.jsontext.compact` writes it.
        task: As :class:`Envelope`'s fields.
        version: As :class:`Envelope`'s fields.
        tenant: As :class:`Envelope`'s fields.
        submitted_at: As :class:`Envelope`'s fields.
        traceparent: As :class:`Envelope`'s fields.

    Raises:
        ValueError: An id with anything but ASCII letters and digits.
    """
    ids = "".join(job_ids)
    if ids and not (ids.isascii() and ids.isalnum()):
        raise ValueError("job ids of ASCII letters and digits only")
    # The key order of to_json: job_id, task, version, tenant, payload, submitted_at, schema, traceparent.
    middle = f'","task":{compact(task)},"version":{compact(version)},"tenant":{compact(tenant)},"payload":'
    tail = f',"submitted_at":{compact(submitted_at)},"schema":{SCHEMA_VERSION}'
    tail += "}" if traceparent is None else f',"traceparent":{compact(traceparent)}}}'
    head = '{"job_id":"'
    return [head + job_id + middle + text + tail for job_id, text in zip(job_ids, payload_texts, strict=True)]
