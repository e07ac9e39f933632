"""Tokens revoked, rotated and expired with the CLI take effect on every API process.

The API runs as two pre-forked processes, each with its own token cache, and requests land on
either. The operator uses `tornado tenants ...`; clients see the change without any restart.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import wait_until
from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.local_machine import tornado_argv

PROCESSES = 2
IN_A_ROW = 20  # consecutive answers that must agree (each lands on either process)


@pytest.fixture(scope="module")
def api(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**stack_env, "TORNADO_QUEUE_PREFIX": f"tok{uuid.uuid4().hex[:6]}"}
    cluster = LocalCluster(env, tmp_path_factory.mktemp("token-api"))
    _process, url = cluster.start_api(processes=PROCESSES)
    yield url, env
    cluster.stop_all(grace=20)


def tornado(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(tornado_argv(*args), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def statuses(url: str, token: str) -> set[int]:
    """The statuses of IN_A_ROW listing requests with ``token``."""
    client = TornadoClient(url, token)
    seen = set()
    for _ in range(IN_A_ROW):
        try:
            client.list(limit=1)
            seen.add(200)
        except ApiError as exc:
            seen.add(exc.status)
    return seen


def new_tenant(env: dict[str, str], *extra: str) -> tuple[str, str]:
    name = f"tok-{uuid.uuid4().hex[:8]}"
    return name, tornado(env, "tenants", "create", name, *extra).stdout.strip()


def test_a_revoked_token_is_refused_by_every_api_process(api: tuple[str, dict[str, str]]) -> None:
    url, env = api
    name, token = new_tenant(env)
    wait_until(lambda: statuses(url, token) == {200}, what="the new token to work on every process")
    revoked_at = time.monotonic()
    tornado(env, "tenants", "revoke", name)
    wait_until(lambda: statuses(url, token) == {401}, what="every process to refuse the revoked token")
    print(f"revocation seen by every process after {time.monotonic() - revoked_at:.3f}s")  # for the notes


def test_rotation_serves_both_tokens_through_the_overlap_then_only_the_new_one(
    api: tuple[str, dict[str, str]],
) -> None:
    url, env = api
    name, old = new_tenant(env)
    new = tornado(env, "tenants", "rotate", name, "--overlap", "2s").stdout.strip()
    assert new.startswith("tnd_") and new != old
    wait_until(lambda: statuses(url, new) == {200}, what="the new token to work on every process")
    wait_until(lambda: statuses(url, old) == {401}, what="the old token to end with its overlap")
    assert statuses(url, new) == {200}


def test_an_expiring_token_works_until_it_expires(api: tuple[str, dict[str, str]]) -> None:
    url, env = api
    _name, token = new_tenant(env, "--expires-in", "6s")
    wait_until(lambda: statuses(url, token) == {200}, what="the token to work before it expires", timeout=5)
    wait_until(lambda: statuses(url, token) == {401}, what="the token to expire on every process")


def test_bad_tenant_commands_get_one_clear_line(api: tuple[str, dict[str, str]]) -> None:
    _url, env = api
    for args, words in (
        (["tenants", "revoke", "nobody-here"], "no valid token of 'nobody-here'"),
        (["tenants", "rotate", "nobody-here"], "no tenant 'nobody-here'"),
        (["tenants", "create", "x", "--expires-in", "soon"], "is not a duration"),
    ):
        result = subprocess.run(tornado_argv(*args), env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode in (1, 2) and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
