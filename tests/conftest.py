"""Shared fixtures: the real local stack (PostgreSQL + SQS/S3 endpoint), started once per session.

The fixtures drive the same :class:`~tornado_core.devstack.DevStack` as
``tornado dev up``. Set ``TORNADO_TEST_DATABASE_URL`` and ``TORNADO_TEST_AWS_ENDPOINT``
to run against services you started yourself instead.

If the services cannot start, the tests that need them are skipped with the
reason, except on CI (strict mode: ``TORNADO_STRICT`` or ``CI``) where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tornado_core.devstack import DevStack, ExternalStack, StackInfo
from tornado_core.errors import TornadoError
from tornado_core.toolchain.strict import strict_mode

pytest_plugins = [
    "tests.docker_fixtures",
    "tests.e2e.nfe_support",
    "tests.e2e.console_support",
    "tests.celery_support",
    "tests.rabbitmq_support",
    "tests.parallel_run",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
Stack = DevStack | ExternalStack


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of setup.cfg (so the suite also runs with another ini file)."""
    config.addinivalue_line("markers", "integration: talks to real services started by the project")
    config.addinivalue_line("markers", "e2e: drives real processes (API, workers) end to end")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so ``-m "not e2e"`` and ``-m integration`` select them."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("integration", "e2e"):
            if marker in parts:
                item.add_marker(marker)


@pytest.fixture(scope="session")
def make_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Path]]:
    """Factory of fresh DevStack state dirs, removed at session end when not pytest's.

    As root, PostgreSQL runs as an unprivileged user that cannot enter pytest's
    private (0700) temp tree, so such state dirs live in /tmp instead.
    """
    owned: list[Path] = []

    def make() -> Path:
        if os.geteuid() != 0:
            return tmp_path_factory.mktemp("devstack")
        path = Path(tempfile.mkdtemp(prefix="tornado-test-stack-"))
        path.chmod(0o711)
        owned.append(path)
        return path

    yield make
    for path in owned:
        shutil.rmtree(path, ignore_errors=True)


def _start(stack: Stack) -> StackInfo:
    try:
        return stack.up()
    except (TornadoError, OSError) as exc:
        if strict_mode(os.environ):
            raise
        pytest.skip(f"local services could not start: {exc}")


@pytest.fixture(scope="session")
def dev_stack(make_state_dir: Callable[[], Path]) -> Iterator[Stack]:
    """The session's running stack: a DevStack in a temp dir, or external services."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    external_db = os.environ.get("TORNADO_TEST_DATABASE_URL")
    external_aws = os.environ.get("TORNADO_TEST_AWS_ENDPOINT")
    if external_db and external_aws:
        external = ExternalStack(external_db, external_aws)
        _start(external)
        yield external
        return
    stack = DevStack(make_state_dir())
    try:
        _start(stack)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack_info(dev_stack: Stack) -> StackInfo:
    """Where the session's services are."""
    return dev_stack.info()


@pytest.fixture(scope="session")
def postgres_url(stack_info: StackInfo) -> str:
    """DSN of the job-store database (migrated; shared by the whole session)."""
    return stack_info.database_url


@pytest.fixture
def fresh_database_url(dev_stack: Stack) -> Iterator[str]:
    """DSN of a new, migrated, empty database for this test only (dropped after)."""
    dsn = dev_stack.create_database()
    yield dsn
    with contextlib.suppress(TornadoError):  # PostgreSQL may be down on purpose
        dev_stack.drop_database(dsn)


@pytest.fixture(scope="session")
def erp_database_url(stack_info: StackInfo) -> str:
    """DSN of the ERP's database (RDS stand-in), as task handlers get it."""
    return stack_info.erp_database_url


@pytest.fixture(scope="session")
def redshift_url(stack_info: StackInfo) -> str:
    """DSN of the local Redshift stand-in (a PostgreSQL database)."""
    return stack_info.redshift_url


@pytest.fixture(scope="session")
def aws_endpoint_url(stack_info: StackInfo) -> str:
    """URL of the SQS + S3 endpoint (credentials ``test``/``test`` are in the environment)."""
    return stack_info.aws_endpoint_url


@pytest.fixture
def unique_prefix() -> str:
    """A short unique name part (e.g. ``t3f9a2c``) for queues and object keys."""
    return "t" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def stack_env(stack_info: StackInfo) -> dict[str, str]:
    """Environment for child processes: this one's (PATH ...) without TORNADO_*, plus the stack's.

    The repository root is on PYTHONPATH so ``python -m tornado_cli`` works from any directory.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_")}
    env.update(stack_info.env())
    paths = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
