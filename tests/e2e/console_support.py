"""The console's test world: its own database, operators of each role, a real API serving the console."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest

from tornado_core.adapters.runtimes.process.cluster import LocalCluster
from tornado_core.adapters.runtimes.process.runtime import ProcessRuntime
from tornado_core.bootstrap import build_services
from tornado_core.devstack import DevStack, ExternalStack
from tornado_core.local_machine import tornado_argv
from tornado_core.services import Services
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token

#: The operators every console test can sign in as: name -> (role, password).
OPERATORS = {
    "ana.admin": ("admin", "admin-password-1234"),
    "otto.operator": ("operator", "operator-password-1234"),
    "vera.viewer": ("viewer", "viewer-password-1234"),
}
#: Set to a folder to keep screenshots of the main pages there (docs/console does).
SCREENSHOTS = os.environ.get("TORNADO_CONSOLE_SCREENSHOTS")


@dataclass
class ConsoleWorld:
    """One installation with the console: its environment, services, API and a tenant's token."""

    env: dict[str, str]
    services: Services
    cluster: LocalCluster
    url: str
    token: str
    tenant: str
    state_dir: Path
    sessions: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``tornado ARGS`` as an operator would; fails the test on a non-zero exit."""
        result = subprocess.run(
            tornado_argv(*args), env=self.env, input=stdin, capture_output=True, text=True, timeout=180
        )
        if result.returncode != 0:
            raise AssertionError(f"tornado {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def request(
        self,
        method: str,
        path: str,
        *,
        cookie: str | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], str]:
        """One HTTP request, redirects not followed: status, headers (lower-case names), body."""
        parts = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        sent = dict(headers or {})
        if cookie:
            sent["Cookie"] = cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            text = answer.read().decode(errors="replace")
            received: dict[str, str] = {}
            for name, value in answer.getheaders():  # Set-Cookie may come more than once: one per line
                key = name.lower()
                received[key] = f"{received[key]}\n{value}" if key in received else value
            return answer.status, received, text
        finally:
            connection.close()

    def sign_in(self, name: str, password: str | None = None) -> str:
        """Sign in over HTTP as a browser would; returns the ``Cookie`` header of the session."""
        if name in self.sessions:
            return self.sessions[name]
        _status, headers, page = self.request("GET", "/console/login")
        login_cookie = set_cookies(headers)[0].split(";", 1)[0]
        token = re.search(r'name="_csrf" value="([^"]+)"', page)
        assert token, page
        form = {
            "_csrf": token.group(1),
            "name": name,
            "password": password or OPERATORS[name][1],
            "next": "/console",
        }
        status, headers, _ = self.request("POST", "/console/login", cookie=login_cookie, form=form)
        assert status == 303, (status, headers)
        session = next(c for c in set_cookies(headers) if c.startswith("tornado_console="))
        self.sessions[name] = session.split(";", 1)[0]
        return self.sessions[name]

    def audit_count(self) -> int:
        """How many entries the audit log holds (read straight from the database)."""
        with psycopg2.connect(self.env["TORNADO_DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tornado_audit_log")
            row = cur.fetchone()
        conn.close()
        return int(row[0]) if row else 0

    def csrf_of(self, cookie: str, path: str = "/console") -> str:
        """The CSRF token the console puts in its forms for this session."""
        _status, _headers, page = self.request("GET", path, cookie=cookie)
        found = re.search(r'name="_csrf" value="([^"]+)"', page)
        assert found, page[:500]
        return found.group(1)


def set_cookies(headers: dict[str, str]) -> list[str]:
    """The ``Set-Cookie`` headers of an answer, one string each."""
    return [line for line in headers.get("set-cookie", "").split("\n") if line]


@pytest.fixture(scope="module")
def console_world(
    dev_stack: DevStack | ExternalStack, stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleWorld]:
    """A fresh database with three operators and a tenant, and a running API serving the console."""
    database = dev_stack.create_database()
    state_dir = tmp_path_factory.mktemp("console-state")
    env = {
        **stack_env,
        "TORNADO_QUEUE": "postgres",
        "TORNADO_QUEUE_PREFIX": f"con{uuid.uuid4().hex[:6]}",
        "TORNADO_DATABASE_URL": database,
        "TORNADO_STATE_DIR": str(state_dir),
        "TORNADO_LOG_LEVEL": "INFO",
    }
    services, close = build_services(Settings.load(env))
    token, tenant = new_token(), f"acme-{uuid.uuid4().hex[:6]}"
    services.tenants.create(tenant, hash_token(token))
    cluster = LocalCluster(env, tmp_path_factory.mktemp("console-logs"))
    world = ConsoleWorld(env, services, cluster, "", token, tenant, state_dir)
    for name, (role, password) in OPERATORS.items():
        world.cli("operators", "create", name, "--role", role, "--password-stdin", stdin=password + "\n")
    _process, world.url = cluster.start_api()
    yield world
    cluster.stop_all(grace=20)
    _stop_released_workers(services, state_dir / "runtime")
    close()
    dev_stack.drop_database(database)


def _stop_released_workers(services: Services, runtime_dir: Path) -> None:
    """Stop the workers the console's release tests deployed with the process runtime."""
    runtime = ProcessRuntime(services.settings, state_dir=runtime_dir)
    for task_dir in (d for d in runtime_dir.glob("*") if d.is_dir()):
        for version_dir in (d for d in task_dir.glob("*") if d.is_dir()):
            runtime.stop(task_dir.name, version_dir.name, grace_period=20)
