"""Django's ``enqueue_on_commit`` with a real Django on the test PostgreSQL and a real API process:
a rolled-back transaction submits nothing, a committed one exactly one job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.bootstrap import build_services
from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token
from tornado_core.transactional.django import enqueue_on_commit

pytestmark = pytest.mark.integration


class Rollback(Exception):
    """Raised inside ``transaction.atomic()`` to roll it back."""


def _django_settings(dsn: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    database = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    return {"DATABASES": {"default": database}, "INSTALLED_APPS": [], "USE_TZ": True}


@pytest.fixture(scope="module")
def django_db(erp_database_url: str) -> Iterator[Any]:
    """Django configured on the ERP database (which holds neither Tornado's queue nor an outbox)."""
    import django
    from django.conf import settings
    from django.db import connections

    if not settings.configured:
        settings.configure(**_django_settings(erp_database_url))
        django.setup()
    yield connections["default"]
    connections.close_all()


@pytest.fixture(scope="module")
def services(stack_env: dict[str, str]) -> Iterator[Services]:
    built, close = build_services(Settings.load(stack_env))
    yield built
    close()


@pytest.fixture(scope="module")
def tenant_and_client(
    services: Services, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, TornadoClient]]:
    """A tenant, and a client of a running API for it (the API starts after the tenant exists)."""
    tenant, token = f"django-{uuid.uuid4().hex[:8]}", new_token()
    services.tenants.create(tenant, hash_token(token))
    env = {**stack_env, "TORNADO_QUEUE_PREFIX": f"dj{uuid.uuid4().hex[:6]}"}
    cluster = LocalCluster(env, Path(tmp_path_factory.mktemp("django-api")))
    _process, url = cluster.start_api()
    yield tenant, TornadoClient(url, token)
    cluster.stop_all(grace=20)


def job_id(services: Services, tenant: str, key: str) -> str:
    return services.job_ids.for_idempotency_key(tenant, f"demo.echo\0{key}")


def test_a_rolled_back_transaction_submits_nothing(
    django_db: Any, services: Services, tenant_and_client: tuple[str, TornadoClient]
) -> None:
    from django.db import transaction

    tenant, client = tenant_and_client
    with pytest.raises(Rollback), transaction.atomic():
        with django_db.cursor() as cur:
            cur.execute("SELECT 1")
        enqueue_on_commit(client, "demo.echo", {"message": "order 41"}, idempotency_key="dj-41")
        raise Rollback
    assert services.jobs.get(job_id(services, tenant, "dj-41")) is None


def test_a_committed_transaction_submits_exactly_one_job(
    django_db: Any, services: Services, tenant_and_client: tuple[str, TornadoClient]
) -> None:
    from django.db import transaction

    tenant, client = tenant_and_client
    expected = job_id(services, tenant, "dj-42")
    with transaction.atomic():
        enqueue_on_commit(client, "demo.echo", {"message": "order 42"}, idempotency_key="dj-42")
        with transaction.atomic():  # a savepoint inside: the job still waits for the outer commit
            enqueue_on_commit(client, "demo.echo", {"message": "order 42"}, idempotency_key="dj-42")
        assert services.jobs.get(expected) is None
    record = services.jobs.get(expected)
    assert record is not None and record.tenant == tenant
    assert [job.job_id for job in services.jobs.list(tenant=tenant, limit=50).jobs] == [expected]


def test_bad_input_is_refused_at_once_or_reported_at_the_commit(
    django_db: Any, services: Services, tenant_and_client: tuple[str, TornadoClient]
) -> None:
    from django.db import transaction

    tenant, client = tenant_and_client
    with pytest.raises(TypeError, match="payload must be a dict"), transaction.atomic():
        enqueue_on_commit(client, "demo.echo", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ApiError, match="task_unknown"), transaction.atomic():
        enqueue_on_commit(client, "demo.nothing", {}, robust=False)
    with transaction.atomic():  # robust (the default): logged, the commit goes on
        enqueue_on_commit(client, "demo.echo", {"message": 42}, idempotency_key="dj-bad")
    assert services.jobs.get(job_id(services, tenant, "dj-bad")) is None
