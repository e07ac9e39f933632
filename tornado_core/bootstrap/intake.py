"""The Celery intake's parts: its queue on the Celery broker and the producer path it submits through."""

from __future__ import annotations

from tornado_core.bootstrap import Routing, build_submitter
from tornado_core.errors import ConfigError
from tornado_core.intake import CeleryIntake, IntakeOptions
from tornado_core.naming import intake_queue_spec
from tornado_core.producer.direct import JobSender
from tornado_core.services import Services
from tornado_core.transactional.rows import RowSubmitter
from tornado_core.transactional.tenants import KnownTenants


def build_celery_intake(
    services: Services, routing: Routing, options: IntakeOptions | None = None
) -> CeleryIntake:
    """The intake of ``tornado.submit`` messages, submitting through ``routing`` (the API's table).

    Raises:
        ConfigError: The queue engine is not Celery (only a Celery broker carries such messages).
    """
    settings = services.settings
    if settings.queue_backend != "celery":
        raise ConfigError(
            f"the intake reads tornado.submit messages from a Celery broker, and the queue engine is "
            f"{settings.queue_backend!r}: set TORNADO_QUEUE=celery and TORNADO_BROKER_URL (docs/celery.md)"
        )
    rows = RowSubmitter(
        submitter=build_submitter(services, routing), sender=JobSender(services), jobs=services.jobs,
        tenants=KnownTenants(services.tenants), source="celery intake",
    )  # fmt: skip
    return CeleryIntake(
        queue=services.queue, spec=intake_queue_spec(settings.queue_prefix), rows=rows, options=options
    )
