"""The OpenAPI 3.1 document of the API, generated from the registered tasks' payload schemas."""

from __future__ import annotations

import copy
import re
from typing import Any

from tornado_core.job_ids import MAX_IDEMPOTENCY_KEY
from tornado_core.ports.jobs import JobStatus
from tornado_core.registry import TaskRegistry
from tornado_core.task import TaskSpec
from tornado_core.web.requests import MAX_BATCH, MAX_DELAY, MAX_LIST_LIMIT

_REF = "#/components/schemas/"
_JSON = "application/json"


def openapi_document(
    registry: TaskRegistry,
    *,
    title: str = "Tornado",
    version: str = "1",
    extra_paths: dict[str, Any] | None = None,
    extra_schemas: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the OpenAPI 3.1 document.

    Each task gets ``<Task>Payload`` (its payload JSON Schema, nested definitions
    hoisted into ``components``) and ``<Task>JobRequest``; ``JobRequest`` is their
    union, discriminated by ``task``. Internal tasks are left out: nobody may submit them.
    ``extra_paths`` and ``extra_schemas`` add the endpoints of ``tornado.api`` plugins.
    """
    schemas = _static_schemas() | (extra_schemas or {})
    mapping: dict[str, str] = {}
    for name in registry.names():
        spec = registry.get(name)
        if spec.internal:
            continue
        request_name = _task_schemas(spec, schemas)
        mapping[name] = _REF + request_name
    schemas["JobRequest"] = _job_request_union(mapping)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{title} jobs API",
            "version": version,
            "description": "Submit background jobs to ERP task workers and follow their status.",
        },
        "paths": _paths() | (extra_paths or {}),
        "components": {
            "schemas": schemas,
            "responses": _responses(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }


def _component_prefix(task: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", task) if part)


def _task_schemas(spec: TaskSpec, schemas: dict[str, Any]) -> str:
    prefix = _component_prefix(spec.name)
    payload = copy.deepcopy(spec.json_schema())
    for def_name, definition in payload.pop("$defs", {}).items():
        schemas[f"{prefix}_{def_name}"] = _rewrite_refs(definition, prefix)
    payload = _rewrite_refs(payload, prefix)
    payload.setdefault("description", spec.description or f"Payload of {spec.name}.")
    schemas[f"{prefix}Payload"] = payload
    schemas[f"{prefix}JobRequest"] = {
        "type": "object",
        "description": f"Submit {spec.name} (version {spec.version}). {spec.description}".strip(),
        "required": ["task", "payload"],
        "additionalProperties": False,
        "properties": {
            "task": {"const": spec.name},
            "payload": {"$ref": f"{_REF}{prefix}Payload"},
            "idempotency_key": {"$ref": f"{_REF}IdempotencyKey"},
            "delay": {"$ref": f"{_REF}Delay"},
            "run_at": {"$ref": f"{_REF}RunAt"},
        },
    }
    return f"{prefix}JobRequest"


def _rewrite_refs(node: Any, prefix: str) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                f"{_REF}{prefix}_{value[len('#/$defs/') :]}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else _rewrite_refs(value, prefix)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    return node


def _job_request_union(mapping: dict[str, str]) -> dict[str, Any]:
    return {
        "description": "One job: the task's name and a payload matching that task's schema.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "task", "mapping": mapping},
    }


def _static_schemas() -> dict[str, Any]:
    status = {"type": "string", "enum": [s.value for s in JobStatus]}
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "IdempotencyKey": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY,
            "description": "Submitting the same key (for the same task) again returns the same job id.",
        },
        "Delay": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_DELAY,
            "description": "Seconds from now before the job may run (not with run_at). Beyond 900 (the "
            "queue's own limit) the job is answered 'scheduled' and waits in the job store until a "
            "scheduler (`tornado scheduler`) queues it.",
        },
        "RunAt": {
            "type": "string",
            "format": "date-time",
            "description": f"When the job may run, with its offset, at most {MAX_DELAY} s ahead (not with "
            "delay); a past time runs it at once.",
        },
        "JobStatus": status,
        "Receipt": {
            "type": "object",
            "required": ["id", "task", "version", "status"],
            "properties": {
                "id": {"type": "string"},
                "task": {"type": "string"},
                "version": {"type": "string"},
                "status": {"$ref": f"{_REF}JobStatus", "description": "'queued' for a job queued now."},
                "existing": {
                    "type": "boolean",
                    "description": "true: nothing was queued; this is the job that holds the task's "
                    "uniqueness key (the same tenant and values of its unique fields).",
                },
            },
        },
        "Cancellation": {
            "type": "object",
            "required": ["id", "status", "cancel_requested"],
            "properties": {
                "id": {"type": "string"},
                "status": {"$ref": f"{_REF}JobStatus"},
                "cancel_requested": {
                    "type": "boolean",
                    "description": "true: the job is running and its worker stops it at its next "
                    "progress report; it ends 'cancelled' (or 'succeeded' if it finishes first).",
                },
            },
        },
        "Job": {
            "type": "object",
            "required": ["id", "status"],
            "description": "A job; a job not yet recorded by the store shows only id and status.",
            "properties": {
                "id": {"type": "string"},
                "task": {"type": "string"},
                "version": {"type": "string"},
                "status": {"$ref": f"{_REF}JobStatus"},
                "attempts": {"type": "integer"},
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "progress_note": {"type": ["string", "null"]},
                "result": {},
                "result_ref": {"type": ["string", "null"]},
                "error": {
                    "type": ["object", "null"],
                    "properties": {
                        "type": {"type": ["string", "null"]},
                        "message": {"type": ["string", "null"]},
                    },
                },
                "created_at": {"type": "string", "format": "date-time"},
                "started_at": nullable_time,
                "finished_at": nullable_time,
                "updated_at": {"type": "string", "format": "date-time"},
            },
        },
        "JobPage": {
            "type": "object",
            "required": ["jobs", "next_cursor"],
            "properties": {
                "jobs": {"type": "array", "items": {"$ref": f"{_REF}Job"}},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["jobs"],
            "additionalProperties": False,
            "properties": {
                "jobs": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {}},
            },
            "description": "Items are validated one by one (see JobRequest); bad ones do not stop good ones.",
        },
        "BatchResult": _batch_result_schema(),
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"$ref": f"{_REF}ErrorDetail"}},
        },
        "ErrorDetail": _error_detail_schema(),
    }


def _error_detail_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "examples": ["payload_invalid"]},
            "message": {"type": "string"},
            "fields": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "examples": ["payload.message"]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }


def _batch_result_schema() -> dict[str, Any]:
    accepted = {
        "allOf": [{"$ref": f"{_REF}Receipt"}],
        "properties": {"index": {"type": "integer"}},
        "required": ["index"],
    }
    refused = {
        "type": "object",
        "required": ["index", "error"],
        "properties": {"index": {"type": "integer"}, "error": {"$ref": f"{_REF}ErrorDetail"}},
    }
    return per_item_results_schema(accepted, refused)


def per_item_results_schema(accepted: dict[str, Any], refused: dict[str, Any]) -> dict[str, Any]:
    """``{"accepted", "rejected", "results": [...]}``: the answer of an endpoint that takes a list
    and accepts or refuses each item on its own (``accepted`` and ``refused`` describe one result)."""
    return {
        "type": "object",
        "required": ["accepted", "rejected", "results"],
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {"type": "array", "items": {"oneOf": [accepted, refused]}},
        },
    }


def _responses() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {_JSON: {"schema": {"$ref": f"{_REF}Error"}}}}

    return {
        "BadRequest": error("Malformed JSON or query parameter."),
        "Unauthorized": error("Missing, unknown, revoked or expired bearer token."),
        "TooManyRequests": error("The tenant is over its request quota; retry after Retry-After seconds."),
        "NotFound": error("No such job for this tenant, or no such route."),
        "Conflict": error("The job has already finished; nothing was changed."),
        "TooLarge": error("The body exceeds the configured limit."),
        "UnsupportedMediaType": error("The body is not application/json."),
        "Unprocessable": error("Unknown task (field 'task'), missing field or payload schema violation."),
        "Unavailable": error("The queue or the job store cannot be reached; nothing was accepted."),
    }


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": f"{_REF}{schema}"}}}}


#: The API's shared error responses (``#/components/responses/...``), by HTTP status.
ERROR_RESPONSES = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "404": "NotFound",
    "409": "Conflict",
    "413": "TooLarge",
    "415": "UnsupportedMediaType",
    "422": "Unprocessable",
    "429": "TooManyRequests",
    "503": "Unavailable",
}


def error_responses(*statuses: str) -> dict[str, Any]:
    """Operation ``responses`` for ``statuses``, each referring to the API's shared error response.

    Args:
        statuses: HTTP statuses among :data:`ERROR_RESPONSES` (``"401"``, ``"404"``...).
    """
    return {status: {"$ref": f"#/components/responses/{ERROR_RESPONSES[status]}"} for status in statuses}


def operation(
    summary: str,
    operation_id: str,
    responses: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """One OpenAPI operation (for the core's extensions: schedules, webhooks, workflows).

    Args:
        summary: Its one-line summary.
        operation_id: Its ``operationId``.
        responses: Its responses, by status.
        parameters: Its parameters, if any.
        body: The name of the component schema of its required JSON body, if any.
    """
    found: dict[str, Any] = {"summary": summary, "operationId": operation_id, "responses": responses}
    if parameters:
        found["parameters"] = parameters
    if body:
        found["requestBody"] = _body(body)
    return found


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": {"$ref": f"{_REF}{schema}"}}}}


def _paths() -> dict[str, Any]:
    post_errors = error_responses("400", "401", "413", "415", "422", "429", "503")
    read_errors = ("401", "429", "503")
    return {
        "/v1/jobs": {
            "post": {
                "summary": "Submit a job",
                "operationId": "submitJob",
                "requestBody": _body("JobRequest"),
                "responses": {
                    "202": _json_response("Queued (the queue acknowledged it).", "Receipt"),
                    "200": _json_response(
                        "Not queued: the job holding the task's uniqueness key ('existing': true).", "Receipt"
                    ),
                }
                | post_errors,
            },
            "get": {
                "summary": "List this tenant's jobs, newest first",
                "operationId": "listJobs",
                "parameters": _list_parameters(),
                "responses": {"200": _json_response("One page of jobs.", "JobPage")}
                | error_responses("400", *read_errors),
            },
        },
        "/v1/jobs:batch": {
            "post": {
                "summary": f"Submit up to {MAX_BATCH} jobs",
                "description": "200 with one result per item; 503 only when nothing was accepted "
                "because the queue is down.",
                "operationId": "submitJobs",
                "requestBody": _body("BatchRequest"),
                "responses": {"200": _json_response("Per-item results.", "BatchResult")} | post_errors,
            },
        },
        "/v1/jobs/{id}": {
            "get": {
                "summary": "A job's status, progress, result or error",
                "operationId": "getJob",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json_response("The job.", "Job")}
                | error_responses("404", *read_errors),
            },
        },
        "/v1/jobs/{id}:cancel": {
            "post": {
                "summary": "Cancel a job",
                "description": "A queued, scheduled or retrying job is cancelled at once and never runs "
                "(200). A running job is asked to stop: its worker stops it at its next progress "
                "report (202). A finished job is left as it is (409).",
                "operationId": "cancelJob",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": _json_response("Cancelled: it will never run.", "Cancellation"),
                    "202": _json_response("Running: its worker will stop it.", "Cancellation"),
                }
                | error_responses("404", "409", *read_errors),
            },
        },
        "/healthz": _probe("Process is alive (no dependencies checked)."),
        "/readyz": _probe("Queue and job store answer (503 names the one that does not).", ready=True),
        "/openapi.json": _probe("This document."),
    }


def _probe(summary: str, *, ready: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK"}}
    if ready:
        responses |= error_responses("503")
    return {"get": {"summary": summary, "security": [], "responses": responses}}


def _list_parameters() -> list[dict[str, Any]]:
    return [
        {"name": "task", "in": "query", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "schema": {"$ref": f"{_REF}JobStatus"}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 50},
        },
        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    ]
