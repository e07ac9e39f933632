"""Services someone else runs (CI service containers), behind the DevStack surface.

The pytest fixtures use this when ``TORNADO_TEST_DATABASE_URL`` and
``TORNADO_TEST_AWS_ENDPOINT`` are set, so tests read the same fields either way.
"""

from __future__ import annotations

import secrets

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres.admin import (
    DatabaseAdmin,
    database_name,
    migrate,
    with_database,
)
from tornado_core.devstack.errors import DevStackError
from tornado_core.devstack.stack import BUCKET, REGION, StackInfo
from tornado_core.errors import TornadoError


class ExternalStack:
    """An existing PostgreSQL server and SQS/S3 endpoint.

    The job-store database is ``database_url``; the ERP, Redshift and template
    databases are created next to it with the suffixes ``_erp``, ``_redshift``
    and ``_template`` (the role needs CREATEDB).

    Args:
        database_url: ``postgresql://`` URI of the job-store database.
        aws_endpoint_url: The SQS/S3 endpoint.
        secret_key: ``TORNADO_SECRET_KEY`` to hand out; random if omitted.
    """

    def __init__(self, database_url: str, aws_endpoint_url: str, *, secret_key: str | None = None) -> None:
        self.database_url = database_url
        self.aws_endpoint_url = aws_endpoint_url
        self._secret_key = secret_key or secrets.token_urlsafe(32)
        self._base = database_name(database_url)

    def up(self) -> StackInfo:
        """Create the side databases and the bucket if missing; migrate."""
        admin = DatabaseAdmin(self.database_url)
        for suffix in ("_erp", "_redshift", "_template"):
            admin.ensure(self._base + suffix)
        for dsn in (self.database_url, with_database(self.database_url, self._base + "_template")):
            try:
                migrate(dsn)
            except TornadoError as exc:
                raise DevStackError(f"could not migrate {dsn}: {exc}") from exc
        client = make_client("s3", region=REGION, endpoint_url=self.aws_endpoint_url)
        try:
            S3ObjectStore(client, BUCKET).ensure_bucket()
        except TornadoError as exc:
            raise DevStackError(f"could not create bucket {BUCKET}: {exc}") from exc
        return self.info()

    def down(self) -> None:
        """Nothing to stop: these services are not ours."""

    def info(self) -> StackInfo:
        """Where the services are."""
        return StackInfo(
            database_url=self.database_url,
            erp_database_url=with_database(self.database_url, self._base + "_erp"),
            redshift_url=with_database(self.database_url, self._base + "_redshift"),
            aws_endpoint_url=self.aws_endpoint_url,
            secret_key=self._secret_key,
        )

    def env(self) -> dict[str, str]:
        """The settings environment (see :meth:`StackInfo.env`)."""
        return self.info().env()

    def create_database(self, name: str | None = None) -> str:
        """A new, migrated database cloned from the template; returns its DSN."""
        return DatabaseAdmin(self.database_url).create(name, template=self._base + "_template")

    def drop_database(self, name_or_dsn: str) -> None:
        """Drop a database made by :meth:`create_database`."""
        name = database_name(name_or_dsn) if "://" in name_or_dsn else name_or_dsn
        if name.startswith(self._base):
            raise DevStackError(f"refusing to drop the stack's own database {name!r}")
        DatabaseAdmin(self.database_url).drop(name)

    def stop_postgres(self) -> None:
        """Not possible: raises :class:`DevStackError`."""
        raise DevStackError("external PostgreSQL cannot be stopped by the tests")

    def start_postgres(self) -> None:
        """Not possible: raises :class:`DevStackError`."""
        raise DevStackError("external PostgreSQL cannot be started by the tests")

    def stop_moto(self) -> None:
        """Not possible: raises :class:`DevStackError`."""
        raise DevStackError("the external SQS/S3 endpoint cannot be stopped by the tests")

    def start_moto(self) -> None:
        """Not possible: raises :class:`DevStackError`."""
        raise DevStackError("the external SQS/S3 endpoint cannot be started by the tests")
