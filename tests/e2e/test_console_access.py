"""Who may open the console: no session, a tenant's token, the wrong role and forged posts are refused."""

from __future__ import annotations

import re

import pytest

from tests.e2e.console_support import ConsoleWorld, set_cookies
from tornado_core.web.console.routes import PAGES

#: A concrete path for each page (its pattern's groups filled with something plausible).
SAMPLE_PATHS = {
    r"/?": "/console",
    r"/tasks/([^/]+)": "/console/tasks/demo.echo",
    r"/tasks/([^/]+)/release": "/console/tasks/demo.echo/release",
    r"/jobs/([^/]+)": "/console/jobs/anyjob",
    r"/bulk/(\d+)": "/console/bulk/1",
    r"/operators/([^/]+)": "/console/operators/otto.operator",
}
PATHS = [SAMPLE_PATHS.get(pattern, "/console" + pattern) for pattern, _handler in PAGES]
PROTECTED = [path for path in PATHS if path != "/console/login"]
#: A form that would change something on each page that acts (what a forged post would send).
ACTIONS = {
    "/console/logout": {},
    "/console/tasks/demo.echo/release": {"action": "promote", "version": "1.0.0", "confirmed": "yes"},
    "/console/bulk": {"action": "cancel", "task": "demo.echo", "confirmed": "yes"},
    "/console/dead-letters/message": {
        "task": "demo.echo",
        "version": "1",
        "message_id": "m",
        "action": "purge",
    },
    "/console/operators": {"name": "mallory", "role": "admin", "password": "forged-password-123"},
    "/console/operators/otto.operator": {"change": "role", "role": "admin"},
}


@pytest.mark.parametrize("path", PROTECTED)
def test_a_page_without_a_session_sends_the_browser_to_sign_in(
    console_world: ConsoleWorld, path: str
) -> None:
    status, headers, _ = console_world.request("GET", path)
    assert status == 302
    assert headers["location"].startswith("/console/login?next=")


@pytest.mark.parametrize("path", PROTECTED)
def test_a_tenant_token_does_not_open_the_console(console_world: ConsoleWorld, path: str) -> None:
    status, headers, body = console_world.request(
        "GET", path, headers={"Authorization": f"Bearer {console_world.token}"}
    )
    assert status == 302 and headers["location"].startswith("/console/login"), body[:200]


@pytest.mark.parametrize("path", sorted(ACTIONS))
def test_an_action_without_a_session_is_refused_and_changes_nothing(
    console_world: ConsoleWorld, path: str
) -> None:
    before = _audit_size(console_world)
    status, _, _ = console_world.request("POST", path, form=ACTIONS[path])
    assert status == 401
    status, _, _ = console_world.request(
        "POST", path, form=ACTIONS[path], headers={"Authorization": f"Bearer {console_world.token}"}
    )
    assert status == 401
    assert _audit_size(console_world) == before


@pytest.mark.parametrize("path", sorted(ACTIONS))
def test_a_forged_post_without_the_csrf_token_is_refused(console_world: ConsoleWorld, path: str) -> None:
    cookie = console_world.sign_in("ana.admin")  # the strongest role: only the CSRF check stands in the way
    before = _audit_size(console_world)
    for form in (ACTIONS[path], {**ACTIONS[path], "_csrf": "forged"}):
        status, _, body = console_world.request("POST", path, cookie=cookie, form=form)
        assert status == 403, body[:300]
        assert "CSRF" in body
    assert _audit_size(console_world) == before
    assert console_world.request("GET", "/console", cookie=cookie)[0] == 200  # still signed in


@pytest.mark.parametrize("path", [p for p in sorted(ACTIONS) if p != "/console/logout"])
def test_a_viewer_cannot_act_even_with_a_valid_csrf_token(console_world: ConsoleWorld, path: str) -> None:
    cookie = console_world.sign_in("vera.viewer")
    form = {**ACTIONS[path], "_csrf": console_world.csrf_of(cookie)}
    before = _audit_size(console_world)
    status, _, body = console_world.request("POST", path, cookie=cookie, form=form)
    assert status == 403, body[:300]
    assert "viewer role cannot" in body
    assert _audit_size(console_world) == before


def test_a_viewer_sees_every_page_but_no_action_and_only_admins_manage_operators(
    console_world: ConsoleWorld,
) -> None:
    viewer, operator = console_world.sign_in("vera.viewer"), console_world.sign_in("otto.operator")
    for path in ("/console", "/console/queues", "/console/figures", "/console/jobs", "/console/audit"):
        status, _, page = console_world.request("GET", path, cookie=viewer)
        assert status == 200, (path, page[:300])
        assert "Review bulk action" not in page and "Promote" not in page
    assert (
        console_world.request("GET", "/console/bulk/new?action=cancel&task=demo.echo", cookie=viewer)[0]
        == 403
    )
    assert console_world.request("GET", "/console/operators", cookie=viewer)[0] == 403
    assert console_world.request("GET", "/console/operators", cookie=operator)[0] == 403
    assert (
        console_world.request("GET", "/console/operators", cookie=console_world.sign_in("ana.admin"))[0]
        == 200
    )


def test_a_wrong_password_is_refused_and_recorded(console_world: ConsoleWorld) -> None:
    _status, headers, page = console_world.request("GET", "/console/login")
    login_cookie = set_cookies(headers)[0].split(";", 1)[0]
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert csrf
    form = {
        "_csrf": csrf.group(1),
        "name": "otto.operator",
        "password": "not-the-password",
        "next": "/console",
    }
    status, headers, page = console_world.request("POST", "/console/login", cookie=login_cookie, form=form)
    assert status == 401 and not any(c.startswith("tornado_console=") for c in set_cookies(headers))
    assert "Wrong name or password" in page
    audit = console_world.cli("audit", "list", "--action", "login_failed").stdout
    assert "otto.operator" in audit


def test_the_session_cookie_is_http_only_strict_and_the_pages_forbid_framing(
    console_world: ConsoleWorld,
) -> None:
    console_world.sessions.pop("otto.operator", None)
    _status, headers, page = console_world.request("GET", "/console/login")
    login_cookie = set_cookies(headers)[0].split(";", 1)[0]
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page)
    assert csrf
    form = {"_csrf": csrf.group(1), "name": "otto.operator", "password": "operator-password-1234"}
    _status, headers, _ = console_world.request("POST", "/console/login", cookie=login_cookie, form=form)
    session = next(c for c in set_cookies(headers) if c.startswith("tornado_console="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/console" in session
    status, headers, _ = console_world.request("GET", "/console", cookie=session.split(";", 1)[0])
    assert status == 200
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def _audit_size(world: ConsoleWorld) -> int:
    return world.audit_count()


def test_an_admin_creates_an_operator_from_the_console_who_can_then_sign_in(
    console_world: ConsoleWorld,
) -> None:
    admin = console_world.sign_in("ana.admin")
    form = {"_csrf": console_world.csrf_of(admin, "/console/operators"), "name": "nina.new", "role": "viewer"}
    status, _, page = console_world.request(
        "POST", "/console/operators", cookie=admin, form={**form, "password": "short"}
    )
    assert status == 400 and "password" in page  # refused on the form, nothing created
    status, headers, _ = console_world.request(
        "POST", "/console/operators", cookie=admin, form={**form, "password": "nina-password-1234"}
    )
    assert status == 303 and headers["location"].startswith("/console/operators")
    _status, _, listing = console_world.request("GET", "/console/operators", cookie=admin)
    assert 'data-operator="nina.new"' in listing
    nina = console_world.sign_in("nina.new", "nina-password-1234")
    assert console_world.request("GET", "/console/jobs", cookie=nina)[0] == 200
    audit = console_world.cli("audit", "list", "--action", "operator.create").stdout
    assert "nina.new" in audit and "ana.admin" in audit
