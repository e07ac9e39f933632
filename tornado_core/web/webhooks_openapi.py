"""The OpenAPI paths and schemas of the webhook endpoints (``/v1/webhooks...``)."""

from __future__ import annotations

from typing import Any

from tornado_core.ports.webhooks import DeliveryStatus
from tornado_core.web.openapi import error_responses
from tornado_core.webhooks.registration import MAX_DESCRIPTION_LENGTH, MAX_URL_LENGTH

_REF = "#/components/schemas/"
_JSON = "application/json"
#: Most deliveries one listing returns.
MAX_DELIVERIES_LIMIT = 200
DEFAULT_DELIVERIES_LIMIT = 50
_READ_ERRORS = ("401", "429", "503")
#: What a registrable URL looks like (the API checks more: see ``webhooks.registration.check_url``).
_URL_PATTERN = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[^\s#]*)?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


def _id_parameter(description: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def webhook_openapi() -> tuple[dict[str, Any], dict[str, Any]]:
    """The paths and component schemas of the webhook endpoints."""
    paths = {
        "/v1/webhooks": {"post": _register(), "get": _list_endpoints()},
        "/v1/webhooks/{id}": {"delete": _remove()},
        "/v1/webhooks/deliveries": {"get": _list_deliveries()},
        "/v1/webhooks/deliveries/{id}:redeliver": {"post": _redeliver()},
    }
    return paths, _schemas()


def _register() -> dict[str, Any]:
    return {
        "summary": "Register a webhook endpoint for this tenant's finished jobs",
        "description": "Tornado POSTs job.succeeded, job.dead and job.cancelled events to the URL, "
        "signed with the secret in this answer (shown once). See docs/webhooks.md.",
        "operationId": "registerWebhook",
        "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("WebhookRequest")}}},
        "responses": {"201": _answer("Registered; the secret is shown only now.", "NewWebhookEndpoint")}
        | error_responses("400", "401", "413", "415", "422", "429", "503"),
    }


def _list_endpoints() -> dict[str, Any]:
    return {
        "summary": "This tenant's webhook endpoints",
        "operationId": "listWebhooks",
        "responses": {"200": _answer("The endpoints, oldest first.", "WebhookEndpointList")}
        | error_responses(*_READ_ERRORS),
    }


def _remove() -> dict[str, Any]:
    return {
        "summary": "Remove a webhook endpoint (its pending deliveries end dead)",
        "operationId": "removeWebhook",
        "parameters": [_id_parameter("The endpoint's id (whe_...).")],
        "responses": {"200": _answer("Removed.", "RemovedWebhookEndpoint")}
        | error_responses("404", *_READ_ERRORS),
    }


def _list_deliveries() -> dict[str, Any]:
    limit = {
        "type": "integer", "minimum": 1, "maximum": MAX_DELIVERIES_LIMIT, "default": DEFAULT_DELIVERIES_LIMIT,
    }  # fmt: skip
    return {
        "summary": "This tenant's webhook deliveries, newest first (status=dead: the dead-letter list)",
        "operationId": "listWebhookDeliveries",
        "parameters": [
            {"name": "status", "in": "query", "schema": _ref("WebhookDeliveryStatus")},
            {"name": "limit", "in": "query", "schema": limit},
        ],
        "responses": {"200": _answer("The deliveries.", "WebhookDeliveryList")}
        | error_responses("400", *_READ_ERRORS),
    }


def _redeliver() -> dict[str, Any]:
    return {
        "summary": "Deliver a delivered or dead delivery again (same delivery id)",
        "description": "202: it is pending again, due now, with a fresh set of attempts. 409: it is "
        "still pending, or its endpoint was removed.",
        "operationId": "redeliverWebhook",
        "parameters": [_id_parameter("The delivery's id (whd_...).")],
        "responses": {"202": _answer("Scheduled again.", "Redelivery")}
        | error_responses("404", "409", *_READ_ERRORS),
    }


def _schemas() -> dict[str, Any]:
    text, stamp = {"type": "string"}, {"type": "string", "format": "date-time"}
    endpoint_properties = {
        "id": text, "tenant": text, "url": text, "description": text, "secret_prefix": text,
        "created_at": stamp,
    }  # fmt: skip
    endpoint_required = list(endpoint_properties)
    return {
        "WebhookRequest": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_URL_LENGTH,
                    "pattern": _URL_PATTERN,
                    "description": "An http:// or https:// URL, without credentials or fragment.",
                },
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH},
            },
        },
        "WebhookEndpoint": {
            "type": "object",
            "required": endpoint_required,
            "properties": endpoint_properties,
        },
        "NewWebhookEndpoint": {
            "type": "object",
            "required": [*endpoint_required, "secret"],
            "properties": {**endpoint_properties, "secret": {"type": "string", "description": "Shown once."}},
        },
        "WebhookEndpointList": {
            "type": "object",
            "required": ["endpoints"],
            "properties": {"endpoints": {"type": "array", "items": _ref("WebhookEndpoint")}},
        },
        "RemovedWebhookEndpoint": {
            "type": "object",
            "required": ["id", "removed"],
            "properties": {"id": text, "removed": {"const": True}},
        },
        "WebhookDeliveryStatus": {"type": "string", "enum": [s.value for s in DeliveryStatus]},
        "WebhookDelivery": _delivery_schema(),
        "WebhookDeliveryList": {
            "type": "object",
            "required": ["deliveries"],
            "properties": {"deliveries": {"type": "array", "items": _ref("WebhookDelivery")}},
        },
        "Redelivery": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {"id": text, "status": {"const": "pending"}},
        },
    }


def _delivery_schema() -> dict[str, Any]:
    text, stamp = {"type": "string"}, {"type": "string", "format": "date-time"}
    maybe_stamp = {"type": ["string", "null"], "format": "date-time"}
    maybe_int = {"type": ["integer", "null"]}
    properties = {
        "id": text, "endpoint_id": text, "url": text, "job_id": text,
        "event": {"type": "string", "enum": ["job.succeeded", "job.dead", "job.cancelled"]},
        "status": _ref("WebhookDeliveryStatus"), "attempts": {"type": "integer"},
        "next_attempt_at": maybe_stamp, "last_status_code": maybe_int,
        "last_error": {"type": ["string", "null"]}, "last_duration_ms": maybe_int,
        "created_at": stamp, "delivered_at": maybe_stamp,
    }  # fmt: skip
    return {"type": "object", "required": list(properties), "properties": properties}
