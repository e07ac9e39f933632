"""``/v1/webhooks``: a tenant registers, lists and removes endpoints, and sees and redelivers deliveries.

Built as an :class:`~tornado_core.web.extensions.ApiExtension` (:func:`webhook_endpoints`); every
call is scoped to the bearer token's tenant, like ``/v1/jobs``. Deliveries themselves are made by
``tornado webhooks deliver`` (:mod:`tornado_core.webhooks.dispatcher`).
"""

from __future__ import annotations

import re
from typing import Any

from tornado_core.errors import ApiError
from tornado_core.ports.webhooks import DeliveryStatus, RedeliverOutcome, WebhookStorePort
from tornado_core.web.base import AuthenticatedHandler, JsonBodyHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import field_error
from tornado_core.web.extensions import ApiExtension
from tornado_core.web.requests import parse_limit
from tornado_core.web.webhooks_openapi import DEFAULT_DELIVERIES_LIMIT, MAX_DELIVERIES_LIMIT, webhook_openapi
from tornado_core.webhooks.errors import WebhookUrlInvalid
from tornado_core.webhooks.registration import check_url, description_problem, new_secret

_ENDPOINT_ID = re.compile(r"^whe_[0-9a-f]{1,64}$")
_DELIVERY_ID = re.compile(r"^whd_[0-9a-f]{1,64}$")
_FIELDS = frozenset({"url", "description"})


def parse_registration(body: dict[str, Any]) -> tuple[str, str]:
    """``(url, description)`` of a registration body.

    Raises:
        ApiError: 422 ``request_invalid`` naming the first field at fault.
    """
    extra = sorted(set(body) - _FIELDS)
    if extra:
        raise field_error(422, "request_invalid", extra[0], "unknown field (expected url, description)")
    url = body.get("url")
    if url is None:
        raise field_error(422, "request_invalid", "url", "Field required")
    if not isinstance(url, str):
        raise field_error(422, "request_invalid", "url", "must be a string")
    try:
        check_url(url)
    except WebhookUrlInvalid as exc:
        raise field_error(422, "url_invalid", "url", exc.reason) from None
    description = body.get("description", "")
    problem = description_problem(description)
    if problem is not None:
        raise field_error(422, "request_invalid", "description", problem)
    return url, str(description)


def parse_deliveries_query(status: str | None, limit: str | None) -> tuple[DeliveryStatus | None, int]:
    """``(status, limit)`` of ``GET /v1/webhooks/deliveries``.

    Raises:
        ApiError: 400 ``parameter_invalid`` naming the parameter.
    """
    chosen: DeliveryStatus | None = None
    if status is not None:
        try:
            chosen = DeliveryStatus(status)
        except ValueError:
            allowed = ", ".join(s.value for s in DeliveryStatus)
            raise field_error(400, "parameter_invalid", "status", f"must be one of {allowed}") from None
    return chosen, parse_limit(limit, default=DEFAULT_DELIVERIES_LIMIT, maximum=MAX_DELIVERIES_LIMIT)


def _endpoint_not_found(endpoint_id: str) -> ApiError:
    return ApiError(404, "webhook_not_found", f"no webhook endpoint {endpoint_id!r}")


def _delivery_not_found(delivery_id: str) -> ApiError:
    return ApiError(404, "delivery_not_found", f"no webhook delivery {delivery_id!r}")


class _WebhookHandlerMixin:
    store: WebhookStorePort

    def _receive(self, store: WebhookStorePort) -> None:
        self.store = store


class WebhooksHandler(JsonBodyHandler, _WebhookHandlerMixin):
    """``POST /v1/webhooks`` registers an endpoint; ``GET /v1/webhooks`` lists the tenant's."""

    def initialize(self, api: ApiContext, store: WebhookStorePort) -> None:  # type: ignore[override]
        """Receive the shared state and the webhook store."""
        super().initialize(api)
        self._receive(store)

    async def post(self) -> None:
        """201 with the endpoint and its secret (shown this once)."""
        url, description = parse_registration(self.json_body())
        secret = new_secret()
        endpoint = await self.run_blocking(
            self.store.add_endpoint, tenant=self.tenant, url=url, description=description, secret=secret
        )
        self.write_json({**endpoint.to_json(), "secret": secret}, 201)

    async def get(self) -> None:
        """200 with the tenant's endpoints, oldest first (secrets shown by their prefix only)."""
        endpoints = await self.run_blocking(self.store.list_endpoints, tenant=self.tenant)
        self.write_json({"endpoints": [endpoint.to_json() for endpoint in endpoints]})


class WebhookHandler(AuthenticatedHandler, _WebhookHandlerMixin):
    """``DELETE /v1/webhooks/{id}``: remove one of the tenant's endpoints."""

    def initialize(self, api: ApiContext, store: WebhookStorePort) -> None:  # type: ignore[override]
        """Receive the shared state and the webhook store."""
        super().initialize(api)
        self._receive(store)

    async def delete(self, endpoint_id: str) -> None:
        """200 removed; 404 unknown (or another tenant's, or already removed)."""
        if not _ENDPOINT_ID.match(endpoint_id):
            raise _endpoint_not_found(endpoint_id)
        removed = await self.run_blocking(self.store.remove_endpoint, endpoint_id, tenant=self.tenant)
        if not removed:
            raise _endpoint_not_found(endpoint_id)
        self.write_json({"id": endpoint_id, "removed": True})


class DeliveriesHandler(AuthenticatedHandler, _WebhookHandlerMixin):
    """``GET /v1/webhooks/deliveries?status=&limit=``: the tenant's deliveries, newest first."""

    def initialize(self, api: ApiContext, store: WebhookStorePort) -> None:  # type: ignore[override]
        """Receive the shared state and the webhook store."""
        super().initialize(api)
        self._receive(store)

    async def get(self) -> None:
        """200 with the deliveries (``status=dead``: the dead-letter list)."""
        status, limit = parse_deliveries_query(self.query_argument("status"), self.query_argument("limit"))
        found = await self.run_blocking(
            self.store.list_deliveries, tenant=self.tenant, status=status, limit=limit
        )
        self.write_json({"deliveries": [delivery.to_json() for delivery in found]})


class RedeliverHandler(AuthenticatedHandler, _WebhookHandlerMixin):
    """``POST /v1/webhooks/deliveries/{id}:redeliver``: deliver a delivered or dead delivery again."""

    def initialize(self, api: ApiContext, store: WebhookStorePort) -> None:  # type: ignore[override]
        """Receive the shared state and the webhook store."""
        super().initialize(api)
        self._receive(store)

    async def post(self, delivery_id: str) -> None:
        """202 scheduled; 404 unknown; 409 still pending or its endpoint removed."""
        if not _DELIVERY_ID.match(delivery_id):
            raise _delivery_not_found(delivery_id)
        outcome = await self.run_blocking(self.store.redeliver, delivery_id, tenant=self.tenant)
        if outcome is RedeliverOutcome.UNKNOWN:
            raise _delivery_not_found(delivery_id)
        if outcome is RedeliverOutcome.PENDING:
            raise ApiError(
                409, "delivery_pending", f"delivery {delivery_id} is still pending; nothing changed"
            )
        if outcome is RedeliverOutcome.ENDPOINT_REMOVED:
            raise ApiError(
                409, "webhook_removed", f"the endpoint of delivery {delivery_id} was removed; nothing changed"
            )
        self.write_json({"id": delivery_id, "status": "pending"}, 202)


def webhook_endpoints(api: ApiContext, store: WebhookStorePort | None = None) -> ApiExtension:
    """The webhook endpoints, with their OpenAPI paths and schemas.

    Args:
        api: The API's shared state.
        store: The webhook store; by default one on the job-store database (connections are
            opened on first use and live as long as the process).
    """
    if store is None:
        from tornado_core.bootstrap import build_webhook_store

        store = build_webhook_store(api.services.settings)
    args = {"api": api, "store": store}
    routes = [
        (r"/v1/webhooks", WebhooksHandler, args),
        (r"/v1/webhooks/deliveries", DeliveriesHandler, args),
        (r"/v1/webhooks/deliveries/([^/:]+):redeliver", RedeliverHandler, args),
        (r"/v1/webhooks/([^/:]+)", WebhookHandler, args),
    ]
    paths, schemas = webhook_openapi()
    return ApiExtension(routes=routes, openapi_paths=paths, openapi_schemas=schemas)
