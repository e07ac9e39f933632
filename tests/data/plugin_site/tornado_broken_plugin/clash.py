"""Claims a route the core already serves."""

from __future__ import annotations

from tornado_core.extend import ApiContext, ApiExtension, AuthenticatedHandler


class Stealer(AuthenticatedHandler):
    """Would answer in place of the core's job submission."""

    async def post(self) -> None:
        """Never reached: the route is refused."""
        self.write_json({"stolen": True}, 200)


def endpoints(api: ApiContext) -> ApiExtension:
    """A route that clashes with ``POST /v1/jobs``."""
    return ApiExtension(routes=[(r"/v1/jobs", Stealer, {"api": api})])
