"""The API's one error shape, and the one place exceptions become HTTP statuses.

Every error response is::

    {"error": {"code": "payload_invalid", "message": "...",
               "fields": [{"field": "payload.message", "message": "Field required"}]}}

``fields`` is present only when specific request fields are at fault.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from tornado.web import HTTPError

from tornado_core.errors import (
    ApiError,
    AuthError,
    JobNotFound,
    ObjectStoreError,
    PayloadInvalid,
    QueueUnavailable,
    ScheduleExists,
    ScheduleInvalid,
    ScheduleNotFound,
    StoreUnavailable,
    TaskNotFound,
    TaskNotSubmittable,
    VersionNotFound,
)

_log = logging.getLogger(__name__)

FieldError = dict[str, str]

#: Seconds a client should wait before retrying a 503.
RETRY_AFTER_SECONDS = 5

_GENERIC_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "request_invalid",
    500: "internal",
    503: "unavailable",
}


def field_error(status: int, code: str, field: str, message: str) -> ApiError:
    """An :class:`ApiError` about one field."""
    return ApiError(status, code, f"{field}: {message}", fields=[{"field": field, "message": message}])


def unavailable(code: str, message: str) -> ApiError:
    """A 503 with ``Retry-After``."""
    return ApiError(503, code, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def translate(exc: BaseException) -> ApiError:
    """Map any exception to the :class:`ApiError` the client sees.

    Unexpected exceptions become a bare 500 (logged here with their traceback,
    which never reaches the client).
    """
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPError):
        return _from_http_error(exc)
    translated = _from_tornado_error(exc)
    if translated is not None:
        return translated
    _log.error("unhandled error in the API", exc_info=exc)
    return ApiError(500, "internal", "internal error")


def _from_tornado_error(exc: BaseException) -> ApiError | None:
    if isinstance(exc, PayloadInvalid):
        fields = [{"field": payload_field(e["field"]), "message": e["message"]} for e in exc.errors]
        return ApiError(422, "payload_invalid", "the payload does not match the task's schema", fields=fields)
    if isinstance(exc, TaskNotFound):
        return field_error(422, "task_unknown", "task", f"no task named {exc.name!r}")
    if isinstance(exc, TaskNotSubmittable):
        return field_error(422, "task_internal", "task", str(exc))
    if isinstance(exc, VersionNotFound):
        return unavailable(
            "version_unavailable", f"task {exc.task} is routed to version {exc.version}, unknown to this API"
        )
    if isinstance(exc, QueueUnavailable):
        return unavailable("queue_unavailable", "the queue cannot be reached; nothing was accepted")
    if isinstance(exc, StoreUnavailable):
        return unavailable("store_unavailable", "the job store cannot be reached")
    if isinstance(exc, ObjectStoreError):
        return unavailable("object_store_unavailable", "the object store cannot be reached")
    if isinstance(exc, JobNotFound):
        return ApiError(404, "job_not_found", f"no job {exc.job_id!r}")
    if isinstance(exc, AuthError):
        return unauthorized(str(exc))
    return _from_schedule_error(exc)


def _from_schedule_error(exc: BaseException) -> ApiError | None:
    if isinstance(exc, ScheduleInvalid):
        return field_error(422, "schedule_invalid", exc.field, exc.message)
    if isinstance(exc, ScheduleExists):
        return ApiError(409, "schedule_exists", f"a schedule named {exc.name!r} exists; PUT replaces it")
    if isinstance(exc, ScheduleNotFound):
        return ApiError(404, "schedule_not_found", f"no schedule named {exc.name!r}")
    return None


def unauthorized(message: str) -> ApiError:
    """A 401 asking for a bearer token."""
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="tornado"'})


def payload_field(field: str) -> str:
    """A field path inside the payload, as seen from the request body (``payload.x.y``)."""
    return "payload" if field in ("", "(payload)") else f"payload.{field}"


def _from_http_error(exc: HTTPError) -> ApiError:
    status = exc.status_code
    code = _GENERIC_CODES.get(status, "internal" if status >= 500 else "bad_request")
    try:
        message = HTTPStatus(status).phrase.lower()
    except ValueError:
        message = "error"
    return ApiError(status, code, message)
