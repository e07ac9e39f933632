"""The console part of ``tornado showcase``: an operator signs in, finds the dead jobs, redrives them.

It creates an operator account (as ``tornado operators create`` does), signs in to ``/console``
with a form post as a browser would, searches the showcase tenant's dead jobs, starts a bulk redrive
of every one of them from the search (confirmed, with the form's CSRF token), follows its progress
page to the end, and reads the audit log and the API's Prometheus ``/metrics``.
"""

from __future__ import annotations

import http.client
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass

import click

from tornado_core.bootstrap.console import build_console_accounts
from tornado_core.ports.operators import Role
from tornado_core.settings import Settings

_CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


@dataclass(frozen=True)
class ConsoleSummary:
    """What the console part showed."""

    operator: str
    password: str
    dead_found: int
    redriven: int
    audit_entries: int
    http_requests: float


class FormSession:
    """A browser's session on the console: cookies kept, forms posted with their CSRF token."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._cookies: dict[str, str] = {}

    def get(self, path: str) -> tuple[int, str, str]:
        """GET a page: status, ``Location`` (on a redirect) and body."""
        return self._send("GET", path, None)

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        """POST a form with the CSRF token of the page it came from."""
        return self._send("POST", path, urllib.parse.urlencode(form))

    @staticmethod
    def csrf(page: str) -> str:
        """The CSRF token in a page's forms."""
        found = _CSRF.search(page)
        if not found:
            raise click.ClickException("the console page has no form token")
        return found.group(1)

    def sign_in(self, name: str, password: str) -> None:
        """The sign-in form, filled and posted."""
        _status, _location, page = self.get("/console/login")
        status, _location, _page = self.post(
            "/console/login", {"_csrf": self.csrf(page), "name": name, "password": password}
        )
        if status != 303:
            raise click.ClickException(f"signing in to the console answered {status}")

    def _send(self, method: str, path: str, body: str | None) -> tuple[int, str, str]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self._cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read().decode(errors="replace")
            for name, value in answer.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self._cookies[key] = rest.split(";", 1)[0]
            return answer.status, answer.getheader("Location") or "", text
        finally:
            connection.close()


def create_operator(settings: Settings) -> tuple[str, str]:
    """A fresh operator account for the showcase; its name and password."""
    accounts, close = build_console_accounts(settings)
    name, password = f"showcase-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    try:
        accounts.create_operator(name, Role.OPERATOR, password, actor="cli:showcase")
    finally:
        close()
    return name, password


def run(url: str, settings: Settings, tenant: str, *, timeout: float = 120.0) -> ConsoleSummary:
    """Sign in, find the tenant's dead jobs, redrive them all in one bulk action, follow it."""
    name, password = create_operator(settings)
    session = FormSession(url)
    session.sign_in(name, password)
    query = urllib.parse.urlencode({"tenant": tenant, "status": "dead"})
    _status, _location, page = session.get(f"/console/jobs?{query}")
    found = re.search(r'id="matched"><strong>([\d,]+)', page)
    dead = int(found.group(1).replace(",", "")) if found else 0
    redriven = _bulk_redrive(session, tenant, timeout) if dead else 0
    _status, _location, audit = session.get(f"/console/audit?actor={name}")
    return ConsoleSummary(
        operator=name,
        password=password,
        dead_found=dead,
        redriven=redriven,
        audit_entries=audit.count("<tr data-action="),
        http_requests=_http_requests(url),
    )


def _bulk_redrive(session: FormSession, tenant: str, timeout: float) -> int:
    _status, _location, page = session.get("/console/jobs")
    form = {
        "_csrf": session.csrf(page),
        "action": "redrive",
        "tenant": tenant,
        "status": "dead",
        "confirmed": "yes",
    }
    status, location, _page = session.post("/console/bulk", form)
    if status != 303:
        raise click.ClickException(f"starting the bulk redrive answered {status}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _status, _location, progress = session.get(location)
        if 'id="bulk-status">succeeded' in progress:
            done = re.search(r'id="bulk-done">([\d,]+)', progress)
            return int(done.group(1).replace(",", "")) if done else 0
        if 'id="bulk-status">failed' in progress:
            raise click.ClickException("the console's bulk redrive failed: see its page")
        time.sleep(0.5)
    raise click.ClickException(f"the console's bulk redrive did not finish within {timeout:.0f}s")


def _http_requests(url: str) -> float:
    """The API's own count of the HTTP requests it answered (``tornado_http_requests_total``)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tornado_http_requests_total{")
    )


def show(summary: ConsoleSummary) -> None:
    """The console part's lines of the showcase's report."""
    click.echo("")
    click.echo("Operations console (/console)")
    rows = [
        ("signed in as", summary.operator),
        ("dead jobs found by search", f"{summary.dead_found}"),
        ("bulk redrive, jobs sent back", f"{summary.redriven}"),
        ("audit entries of the operator", f"{summary.audit_entries}"),
        ("HTTP requests in /metrics", f"{summary.http_requests:.0f}"),
    ]
    for label, value in rows:
        click.echo(f"  {label:<30} {value:>16}")
