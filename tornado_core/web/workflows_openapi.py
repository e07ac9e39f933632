"""The OpenAPI paths and schemas of ``/v1/workflows``."""

from __future__ import annotations

from typing import Any

from tornado_core.ports.workflows import MAX_STEPS, WorkflowStatus
from tornado_core.web.openapi import error_responses, operation

_REF = "#/components/schemas/"
_JSON = "application/json"

#: Most workflows one page of ``GET /v1/workflows`` holds.
MAX_LIST_LIMIT = 100


def workflow_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """The paths and the schemas of the workflow endpoints."""
    return _paths(), _schemas()


def _schemas() -> dict[str, Any]:
    text = {"type": "string"}
    reference = {
        "type": "object", "additionalProperties": False, "required": ["$result"],
        "description": "In a payload: the result (or the field 'path' of the result) of an earlier step.",
        "properties": {"$result": {**text, "minLength": 1}, "path": text},
    }  # fmt: skip
    step_request = {
        "type": "object", "additionalProperties": False, "required": ["name", "task"],
        "properties": {
            "name": {**text, "minLength": 1, "maxLength": 100, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"},
            "task": {**text, "minLength": 1, "maxLength": 200},
            "payload": {"type": "object", "description": "The task's payload; any value may be a "
                        "ResultReference to a step it comes after."},
            "after": {"type": "array", "uniqueItems": True, "items": text,
                      "description": "Names of steps declared before this one that must succeed first."},
        },
    }  # fmt: skip
    request = {
        "type": "object", "additionalProperties": False, "required": ["steps"],
        "properties": {"name": {**text, "maxLength": 200},
                       "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS,
                                 "items": {"$ref": _REF + "WorkflowStepRequest"}}},
    }  # fmt: skip
    nullable = {"type": ["string", "null"]}
    step = {
        "type": "object", "required": ["name", "task", "after", "status", "job_id", "job_status", "error"],
        "properties": {
            "name": text, "task": text, "after": {"type": "array", "items": text},
            "status": {"type": "string", "enum": ["waiting", "queued", "succeeded", "failed", "skipped",
                                                  "cancelled"]},
            "job_id": nullable, "job_status": nullable, "error": nullable,
        },
    }  # fmt: skip
    shown = {
        "id": text, "name": text, "status": {"type": "string", "enum": [s.value for s in WorkflowStatus]},
        "progress": {"type": "object", "required": ["finished", "steps", "fraction"],
                     "properties": {"finished": {"type": "integer"}, "steps": {"type": "integer"},
                                    "fraction": {"type": "number"}}},
        "failure": {"type": ["object", "null"], "properties": {"step": text, "error": nullable}},
        "steps": {"type": "array", "items": {"$ref": _REF + "WorkflowStep"}},
        "created_at": {**text, "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
    }  # fmt: skip
    return {
        "ResultReference": reference,
        "WorkflowStepRequest": step_request,
        "WorkflowRequest": request,
        "WorkflowStep": step,
        "Workflow": {"type": "object", "required": sorted(shown), "properties": shown},
        "WorkflowList": {
            "type": "object", "required": ["workflows"],
            "properties": {"workflows": {"type": "array", "items": {"$ref": _REF + "Workflow"}}},
        },
    }  # fmt: skip


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": {"$ref": _REF + schema}}}}


def _paths() -> dict[str, Any]:
    path_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    listing = [
        {"name": "status", "in": "query", "required": False,
         "schema": {"type": "string", "enum": [s.value for s in WorkflowStatus]}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT}},
        {"name": "before", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Only workflows older than this id (the last id of the previous page)."},
    ]  # fmt: skip
    reads = error_responses("401", "429", "503")
    shown = _answer("The workflow.", "Workflow")
    return {
        "/v1/workflows": {
            "get": operation("This tenant's workflows, newest first", "listWorkflows",
                       {"200": _answer("A page of workflows.", "WorkflowList")}
                       | error_responses("400") | reads, parameters=listing),
            "post": operation("Submit a workflow: steps (jobs) run in the order their 'after' lists say",
                        "submitWorkflow",
                        {"202": _answer("Accepted; the steps after none are queued.", "Workflow")}
                        | error_responses("400", "413", "415", "422") | reads, body="WorkflowRequest"),
        },
        "/v1/workflows/{id}": {
            "get": operation("A workflow: status, progress, failure, steps", "getWorkflow",
                       {"200": shown} | error_responses("404") | reads, parameters=path_id),
        },
        "/v1/workflows/{id}:cancel": {
            "post": operation("Cancel a workflow: waiting steps never run, running ones are asked to stop",
                        "cancelWorkflow", {"200": shown} | error_responses("404") | reads,
                        parameters=path_id),
        },
    }  # fmt: skip
