"""What a plugin package uses to add HTTP endpoints and CLI commands to Tornado.

Tornado has four doors, entry-point groups found in every installed package
(:mod:`tornado_core.plugins`): ``tornado.tasks`` (task handlers), ``tornado.api`` (HTTP
endpoints), ``tornado.commands`` (``tornado`` sub-commands) and ``tornado.devstack`` (services
the local stack runs for the package, e.g. the SEFAZ emulator: :class:`Companion`). This module is the whole
surface a plugin needs beyond :mod:`tornado_core`; the rest of the core is internal.

An endpoint::

    from tornado_core.extend import ApiContext, ApiExtension, JsonBodyHandler, field_error, submit_job

    class CancelHandler(JsonBodyHandler):
        async def post(self) -> None:
            body = self.json_body()                      # 400/413/415/422 answered for you
            if "key" not in body:
                raise field_error(422, "request_invalid", "key", "Field required")
            receipt = await submit_job(self.api, self.tenant, "nfe.cancel", body, size_hint=self.body_size)
            self.write_json(receipt, 202)

    def endpoints(api: ApiContext) -> ApiExtension:
        return ApiExtension(routes=[(r"/v1/nfe:cancel", CancelHandler, {"api": api})],
                            openapi_paths={"/v1/nfe:cancel": {...}})

A command group::

    @click.group()
    def nfe() -> None:
        "NF-e: certificates and contingency."

    @nfe.command()
    def status() -> None:
        with command_services() as services:
            ...

Declared in the plugin's ``setup.cfg``::

    [options.entry_points]
    tornado.api =
        nfe = acme_nfe.api:endpoints
    tornado.commands =
        nfe = acme_nfe.cli:nfe

See docs/architecture.md (the doors) and docs/newtask.md (adding an endpoint to a task project).
"""

from tornado_core.commands import (
    api_url_option,
    command_services,
    load_settings,
    reported_errors,
    token_option,
)
from tornado_core.devstack.companions import Companion, CompanionContext
from tornado_core.errors import ApiError
from tornado_core.plugins import API_GROUP, COMMANDS_GROUP, DEVSTACK_GROUP, TASKS_GROUP, PluginError
from tornado_core.web.base import AuthenticatedHandler, JsonBodyHandler
from tornado_core.web.context import ApiContext
from tornado_core.web.errors import field_error, translate, unavailable
from tornado_core.web.extensions import ApiExtension, ApiExtensionFactory, Route, submit_job
from tornado_core.web.openapi import error_responses, per_item_results_schema

__all__ = [
    "API_GROUP",
    "COMMANDS_GROUP",
    "DEVSTACK_GROUP",
    "TASKS_GROUP",
    "ApiContext",
    "ApiError",
    "ApiExtension",
    "ApiExtensionFactory",
    "AuthenticatedHandler",
    "Companion",
    "CompanionContext",
    "JsonBodyHandler",
    "PluginError",
    "Route",
    "api_url_option",
    "command_services",
    "error_responses",
    "field_error",
    "load_settings",
    "per_item_results_schema",
    "reported_errors",
    "submit_job",
    "token_option",
    "translate",
    "unavailable",
]
