"""The Celery intake: ``tornado.submit`` messages on the broker become jobs, as the API would make them.

A Django app's Celery code (``send_task``) and celery beat submit Tornado jobs by sending the
Celery task ``tornado.submit`` to the intake queue; ``tornado intake`` reads that queue and submits
each one through the producer path (routing table, validation, storage first), exactly once per
message (docs/celery.md).
"""

from tornado_core.intake.loop import CeleryIntake, IntakeOptions, IntakeReport
from tornado_core.intake.submissions import SUBMIT_TASK, submission_row

__all__ = ["SUBMIT_TASK", "CeleryIntake", "IntakeOptions", "IntakeReport", "submission_row"]
