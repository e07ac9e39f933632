"""``GET /v1/hello`` and ``POST /v1/hello:echo``, added through the ``tornado.api`` door."""

from __future__ import annotations

from tornado_core.extend import (
    ApiContext,
    ApiExtension,
    AuthenticatedHandler,
    JsonBodyHandler,
    field_error,
    submit_job,
)


class HelloHandler(AuthenticatedHandler):
    """Says hello to the caller's tenant."""

    async def get(self) -> None:
        """200 with the tenant the token belongs to."""
        self.write_json({"hello": self.tenant, "plugin": "tornado-hello-plugin"})


class EchoHandler(JsonBodyHandler):
    """Queues a ``demo.echo`` job with the given message, storage first."""

    async def post(self) -> None:
        """202 with the job's receipt; 422 naming the field when ``message`` is missing."""
        body = self.json_body()
        if not isinstance(body.get("message"), str):
            raise field_error(422, "request_invalid", "message", "must be a string")
        payload = {"message": body["message"]}
        receipt = await submit_job(self.api, self.tenant, "demo.echo", payload, size_hint=self.body_size)
        self.write_json(receipt, 202)


ECHO_SCHEMA = "#/components/schemas/HelloEcho"


def endpoints(api: ApiContext) -> ApiExtension:
    """The plugin's routes and their OpenAPI document."""
    args = {"api": api}
    return ApiExtension(
        routes=[(r"/v1/hello", HelloHandler, args), (r"/v1/hello:echo", EchoHandler, args)],
        openapi_paths={
            "/v1/hello": {"get": {"operationId": "hello", "responses": {"200": {"description": "Hello."}}}},
            "/v1/hello:echo": {
                "post": {
                    "operationId": "helloEcho",
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": ECHO_SCHEMA}}}},
                    "responses": {"202": {"description": "Queued."}},
                }
            },
        },
        openapi_schemas={
            "HelloEcho": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {"type": "string"}},
            }
        },
    )
