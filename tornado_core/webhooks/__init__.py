"""Completion webhooks: a job's outcome POSTed to its tenant's endpoints, signed, retried, dead-lettered.

``signing`` (the ``Tornado-Signature`` header and :func:`verify_signature` for receivers),
``registration`` (URL checks, secrets), ``events`` (body and headers), ``sender`` (one HTTP POST),
``dispatcher`` (the ``tornado webhooks deliver`` loop). Deliveries themselves are created by the
webhook store when a job finishes (:mod:`tornado_core.ports.webhooks`). See docs/webhooks.md.
"""

from tornado_core.webhooks.errors import SignatureError, WebhookError, WebhookUrlInvalid
from tornado_core.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify_signature,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "SignatureError",
    "WebhookError",
    "WebhookUrlInvalid",
    "sign",
    "verify_signature",
]
