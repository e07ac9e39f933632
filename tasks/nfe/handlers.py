"""The NF-e tasks: ``nfe.emit``, ``nfe.cancel``, ``nfe.correct`` and ``nfe.void``.

Each is safe to redeliver: numbers, keys and events are idempotent per job, and a document
that may have reached SEFAZ is asked about before it is sent again (see :mod:`.emit`).

Every process that loads the task entry points (the API, every worker, every CLI command) reads
this module, so the work's own modules (XML bindings, signing, the DANFE's PDF: about 0.4 s of
imports) are imported by the handlers when a job runs, not here.
"""

from __future__ import annotations

from typing import Any

from tornado_core import RetryPolicy, TaskContext, task

from .models import CancelPayload, CorrectionPayload, EmitPayload, VoidPayload

#: SEFAZ outages last minutes to hours: keep trying, more and more slowly, for about a day.
SEFAZ_RETRY = RetryPolicy(max_attempts=40, backoff_base=2.0, backoff_factor=2.0, backoff_max=1800.0)


@task(name="nfe.emit", payload=EmitPayload, timeout=120, visibility_timeout=30, retry=SEFAZ_RETRY)
def emit(ctx: TaskContext, payload: EmitPayload) -> dict[str, Any]:
    """Number, build, sign, transmit and store one NF-e; the result names its key and protocol."""
    from . import emit as emission
    from .endpoints import EndpointTable

    return emission.emit(ctx, payload.invoice, payload.order_id, EndpointTable.bundled())


@task(name="nfe.cancel", payload=CancelPayload, timeout=120, visibility_timeout=30, retry=SEFAZ_RETRY)
def cancel(ctx: TaskContext, payload: CancelPayload) -> dict[str, Any]:
    """Cancel an authorised NF-e (event 110111) within the legal window."""
    from . import events
    from .endpoints import EndpointTable

    return events.cancel(ctx, payload, EndpointTable.bundled())


@task(name="nfe.correct", payload=CorrectionPayload, timeout=120, visibility_timeout=30, retry=SEFAZ_RETRY)
def correct(ctx: TaskContext, payload: CorrectionPayload) -> dict[str, Any]:
    """Register a correction letter (CC-e, event 110110) on an authorised NF-e."""
    from . import events
    from .endpoints import EndpointTable

    return events.correct(ctx, payload, EndpointTable.bundled())


@task(name="nfe.void", payload=VoidPayload, timeout=120, visibility_timeout=30, retry=SEFAZ_RETRY)
def void(ctx: TaskContext, payload: VoidPayload) -> dict[str, Any]:
    """Inutilização of a range of numbers never authorised (burned by rejections)."""
    from . import voiding
    from .endpoints import EndpointTable

    return voiding.void(ctx, payload, EndpointTable.bundled())
