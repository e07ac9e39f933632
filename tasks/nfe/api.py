"""``GET /v1/nfe/{key}``, ``.../xml`` and ``.../danfe``: a tenant's own NF-e, its XML and its DANFE.

Served through the API's door for plugins (entry point ``tornado.api``: :func:`nfe_endpoints`).
The NF-e is looked up by (caller's tenant, key): another tenant's key answers 404 exactly like
an unknown one, so nobody learns that it exists. The files are not streamed through the API: the
answer carries a presigned link of the object store, valid for :data:`LINK_SECONDS`. The same
factory adds :data:`CERTIFICATE_EXPIRY` to the API's ``/metrics`` when the API has the master key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tornado_core import ConfigError
from tornado_core.extend import (
    ApiContext,
    ApiError,
    ApiExtension,
    AuthenticatedHandler,
    error_responses,
    field_error,
)

from .certificate_store import list_certificates
from .config import NfeConfig
from .emissions import Emission, find_by_key, result_of

#: Seconds a download link works.
LINK_SECONDS = 300
#: The gauge of each stored A1 certificate's end of validity (epoch seconds; 0: it does not open).
CERTIFICATE_EXPIRY = "tornado_certificate_expiry_timestamp_seconds"
_KEY = re.compile(r"[0-9]{6}[0-9A-Z]{12}[0-9]{26}")
_FILES = {"xml": ("nfeProc", "-nfe.xml"), "danfe": ("danfe", "-danfe.pdf")}


class NfeHandler(AuthenticatedHandler):
    """``GET /v1/nfe/{key}[/xml|/danfe]``: status, or a download link of a stored file."""

    async def get(self, key: str, file: str | None = None) -> None:
        """The NF-e's status, or ``{"url", "expires_in"}`` for its XML (nfeProc) or DANFE."""
        if not _KEY.fullmatch(key):
            raise field_error(400, "parameter_invalid", "key", "must be the 44-character access key")
        tenant = self.tenant

        def read() -> Emission | None:
            with self.api.services.rds.connection() as conn:
                with conn.cursor() as cur:  # no NF-e was ever emitted here: no tables yet
                    cur.execute("SELECT to_regclass('nfe_emission') IS NOT NULL")
                    if not cur.fetchone()[0]:
                        return None
                return find_by_key(conn, tenant, key)

        emission = await self.run_blocking(read)
        if emission is None:
            raise ApiError(404, "nfe_not_found", "no NF-e with this key for your tenant")
        if file is None:
            self.write_json(_status(emission))
            return
        kind, suffix = _FILES[file]
        object_key = emission.artifacts.get(kind)
        if object_key is None:
            raise ApiError(409, "nfe_file_not_ready", f"the NF-e is {emission.state}: it has no {file} yet")
        objects = self.api.services.objects
        url = await self.run_blocking(
            lambda: objects.download_url(object_key, expires_in=LINK_SECONDS, filename=key + suffix)
        )
        self.write_json({"url": url, "expires_in": LINK_SECONDS})


def _status(emission: Emission) -> dict[str, Any]:
    """The job's result, with when it was authorised and which files can be fetched (not their keys)."""
    return {
        **result_of(emission),
        "authorized_at": emission.authorized_at.isoformat() if emission.authorized_at else None,
        "job_id": emission.job_id,
        "files": sorted(kind for kind in ("nfeProc", "danfe") if kind in emission.artifacts),
    }


def nfe_endpoints(api: ApiContext) -> ApiExtension:
    """The NF-e read endpoints and their OpenAPI document (the ``tornado.api`` door)."""
    args = {"api": api}
    routes = [(r"/v1/nfe/([^/]+)", NfeHandler, args), (r"/v1/nfe/([^/]+)/(xml|danfe)", NfeHandler, args)]
    _watch_certificates(api)
    return ApiExtension(routes=routes, openapi_paths=_openapi())


def _watch_certificates(api: ApiContext) -> None:
    """Add every stored A1's expiry to ``/metrics``, read at most every 5 minutes (needs the master key)."""
    try:
        master_key = NfeConfig.from_environment(os.environ).master_key
    except ConfigError as exc:
        logging.getLogger(__name__).warning("NF-e certificates' expiry not measured: %s", exc)
        return
    if master_key is None:
        return
    objects = api.services.objects

    def read() -> list[tuple[Sequence[str], float]]:
        found = list_certificates(objects, master_key, datetime.now(UTC))
        return [((c.tenant, c.cnpj, c.subject), max(0.0, c.not_after.timestamp())) for c in found]

    documentation = "End of validity of a tenant's A1 certificate (epoch seconds; 0: it does not open)."
    api.metrics.add_gauge(CERTIFICATE_EXPIRY, documentation, ("tenant", "cnpj", "subject"), read)


def _openapi() -> dict[str, Any]:
    key = {
        "name": "key",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{_KEY.pattern}$"},
    }
    link = {
        "type": "object",
        "required": ["url", "expires_in"],
        "properties": {"url": {"type": "string"}, "expires_in": {"type": "integer"}},
    }
    errors = error_responses("400", "401", "404", "429", "503")

    def operation(summary: str, schema: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        ok = {"description": summary, "content": {"application/json": {"schema": schema}}}
        return {"get": {"summary": summary, "parameters": [key], "responses": {"200": ok, **errors, **extra}}}

    not_ready = {
        "409": {
            "description": "Not authorised yet: no such file.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    }
    return {
        "/v1/nfe/{key}": operation("Where the NF-e stands at SEFAZ.", {"type": "object"}, {}),
        "/v1/nfe/{key}/xml": operation("A link to the authorised XML (nfeProc).", link, not_ready),
        "/v1/nfe/{key}/danfe": operation("A link to the DANFE (PDF).", link, not_ready),
    }
