"""The request a delivery makes: its JSON body and its headers (signature, idempotency id, event)."""

from __future__ import annotations

import json
from typing import Any

from tornado_core.ports.webhooks import ClaimedDelivery
from tornado_core.webhooks.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign

USER_AGENT = "Tornado-Webhooks/1"


def delivery_body(claimed: ClaimedDelivery) -> bytes:
    """The JSON body, the same on every attempt: ``{"event", "delivery_id", "created_at", "job": {...}}``,
    or ``"workflow": {...}`` for a ``workflow.*`` event."""
    subject = "workflow" if claimed.event.startswith("workflow.") else "job"
    document: dict[str, Any] = {
        "event": claimed.event,
        "delivery_id": claimed.delivery_id,
        "created_at": claimed.created_at.isoformat(),
        subject: claimed.job,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def delivery_headers(
    claimed: ClaimedDelivery, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers of one attempt: signed now (a retry is signed again, at its own time)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(claimed.secret, body, timestamp=timestamp),
        DELIVERY_HEADER: claimed.delivery_id,
        EVENT_HEADER: claimed.event,
    }
