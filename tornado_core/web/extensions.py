"""The HTTP door: endpoints that installed packages add to the API (entry points ``tornado.api``).

Each entry point names a callable ``(ApiContext) -> ApiExtension``; it is called once per API
process, after the API's shared state exists, and returns its routes with their OpenAPI paths and
schemas. A plugin that fails to load, raises, or clashes with a route already served is left out
with one error in the log naming it; the API serves everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tornado.web import RequestHandler

from tornado_core.plugins import Plugin, PluginError
from tornado_core.web.context import ApiContext
from tornado_core.web.requests import JobRequest

_log = logging.getLogger(__name__)

#: A route as tornado takes it: URL pattern, handler class, ``initialize`` keyword arguments.
Route = tuple[str, type[RequestHandler], dict[str, Any]]


@dataclass(frozen=True)
class ApiExtension:
    """What one plugin adds to the API.

    Attributes:
        routes: Its routes; handlers usually derive from ``JsonBodyHandler`` or
            ``AuthenticatedHandler`` and receive ``api`` (and whatever else they declare).
        openapi_paths: OpenAPI path items of those routes, by path.
        openapi_schemas: Component schemas the paths refer to (``#/components/schemas/...``).
    """

    routes: Sequence[Route]
    openapi_paths: Mapping[str, Any] = field(default_factory=dict)
    openapi_schemas: Mapping[str, Any] = field(default_factory=dict)


#: What a ``tornado.api`` entry point names.
ApiExtensionFactory = Callable[[ApiContext], ApiExtension]


def load_extensions(api: ApiContext, plugins: Sequence[Plugin], taken: set[str]) -> list[ApiExtension]:
    """Build every plugin's extension; the broken ones are logged and left out.

    Args:
        api: The API's shared state, handed to each factory.
        plugins: The ``tornado.api`` plugins to load.
        taken: URL patterns already served; each accepted plugin's patterns are added.
    """
    loaded: list[ApiExtension] = []
    for plugin in plugins:
        try:
            extension = _build(plugin, api, taken)
        except PluginError as exc:
            _log.error("%s; its endpoints are not served", exc, exc_info=exc.__cause__)
            continue
        taken.update(pattern for pattern, _, _ in extension.routes)
        loaded.append(extension)
    return loaded


def _build(plugin: Plugin, api: ApiContext, taken: set[str]) -> ApiExtension:
    factory = plugin.load()
    try:
        extension = factory(api)
    except Exception as exc:
        raise plugin.failure(exc) from exc
    if not isinstance(extension, ApiExtension):
        raise PluginError(f"the {plugin.describe()} returned {type(extension).__name__}, not an ApiExtension")
    clashes = sorted({pattern for pattern, _, _ in extension.routes} & taken)
    if clashes:
        raise PluginError(f"the {plugin.describe()} adds routes already served: {', '.join(clashes)}")
    return extension


def merged_openapi(extensions: Sequence[ApiExtension]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The extensions' OpenAPI paths and schemas, merged."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for extension in extensions:
        paths.update(extension.openapi_paths)
        schemas.update(extension.openapi_schemas)
    return paths, schemas


async def submit_job(
    api: ApiContext,
    tenant: str,
    task: str,
    payload: dict[str, Any],
    *,
    size_hint: int,
    idempotency_key: str | None = None,
) -> dict[str, str]:
    """Queue a job from a plugin's endpoint, storage first, through the API's enqueue path.

    Internal tasks (declared ``internal=True``, refused on ``POST /v1/jobs``) may be queued
    this way.

    Args:
        api: The API's shared state.
        tenant: The caller's tenant.
        task: The task's name.
        payload: Its payload (validated against the task's schema).
        size_hint: About how many bytes the payload takes (large ones are prepared off the
            event loop, as their payload may be claim-checked to the object store).
        idempotency_key: Optional key; a repeat returns the first job.

    Returns:
        The receipt ``{"id", "task", "version", "status"}``, once the queue has the message.

    Raises:
        TornadoError: Unknown task, invalid payload, queue or object store down.
    """
    request = JobRequest(task, payload, idempotency_key)
    return await api.enqueuer.submit(tenant, request, body_size=size_hint, internal_ok=True)
