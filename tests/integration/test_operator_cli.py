"""``tornado operators`` and ``tornado audit`` on a real PostgreSQL, as an administrator runs them."""

from __future__ import annotations

import getpass
import json
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tornado_core.adapters.postgres import PostgresPool
from tornado_core.adapters.postgres.audit import PostgresAuditLog
from tornado_core.adapters.postgres.operators import PostgresOperatorStore
from tornado_core.console.accounts import Accounts
from tornado_core.local_machine import tornado_argv

PASSWORD = "correct horse battery staple"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(stack_env: dict[str, str], fresh_database_url: str) -> Run:
    """``tornado ARGS`` against a database of this test's own, with optional standard input."""

    def tornado(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {**stack_env, "TORNADO_DATABASE_URL": fresh_database_url}
        return subprocess.run(
            tornado_argv(*args), env=env, input=stdin, capture_output=True, text=True, timeout=120
        )

    return tornado


@pytest.fixture
def accounts(fresh_database_url: str) -> Iterator[Accounts]:
    pool = PostgresPool(fresh_database_url, min_size=0, max_size=2)
    yield Accounts(PostgresOperatorStore(pool), PostgresAuditLog(pool))
    pool.close()


def test_an_admin_is_created_from_stdin_and_the_audit_log_shows_it(run: Run, accounts: Accounts) -> None:
    created = run(
        "operators", "create", "ana.silva", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert created.returncode == 0, created.stderr
    assert "operator 'ana.silva' created (admin)" in created.stdout
    listed = run("operators", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[:3] == ["ana.silva", "admin", "enabled"]
    assert accounts.sign_in("ana.silva", PASSWORD, source="127.0.0.1") is not None  # the password typed

    log = run("audit", "list", "--json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)
    creation = [e for e in entries if e["action"] == "operator.create"]
    assert [(e["actor"], e["target"], e["detail"]) for e in creation] == [
        (f"cli:{getpass.getuser()}", "ana.silva", {"role": "admin"})
    ]
    assert [e["action"] for e in entries] == ["login", "operator.create"]
    assert PASSWORD not in log.stdout
    text = run("audit", "list", "--action", "operator.create")
    assert (
        text.returncode == 0
        and text.stdout.count("\n") == 1
        and "\toperator.create\tana.silva\t" in text.stdout
    )


def test_weak_passwords_and_bad_names_are_refused_with_exit_code_2(run: Run, accounts: Accounts) -> None:
    weak = run("operators", "create", "ana", "--role", "viewer", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr and "Traceback" not in weak.stderr
    bad_name = run("operators", "create", "Ana Silva", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert bad_name.returncode == 2 and "lower-case letters" in bad_name.stderr
    bad_role = run("operators", "create", "ana", "--role", "root", "--password-stdin", stdin=PASSWORD)
    assert bad_role.returncode == 2
    assert accounts.operators() == [] and accounts.audit_entries() == []  # nothing half-written


def test_role_state_and_password_changes_are_applied_and_audited(run: Run, accounts: Accounts) -> None:
    assert (
        run("operators", "create", "bia", "--role", "viewer", "--password-stdin", stdin=PASSWORD).returncode
        == 0
    )
    again = run("operators", "create", "bia", "--role", "admin", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 1 and "Error: operator 'bia' already exists" in again.stderr

    assert run("operators", "set-role", "bia", "operator").returncode == 0
    assert run("operators", "disable", "bia").returncode == 0
    assert accounts.sign_in("bia", PASSWORD, source="127.0.0.1") is None
    assert run("operators", "enable", "bia").returncode == 0
    reset = run("operators", "reset-password", "bia", "--password-stdin", stdin="a brand new passphrase\n")
    assert reset.returncode == 0, reset.stderr
    assert accounts.sign_in("bia", PASSWORD, source="127.0.0.1") is None
    signed_in = accounts.sign_in("bia", "a brand new passphrase", source="127.0.0.1")
    assert signed_in is not None and signed_in.operator.role == "operator"

    missing = run("operators", "disable", "ghost")
    assert missing.returncode == 1 and missing.stderr.strip() == "Error: no operator 'ghost'"
    updates = [dict(e.detail) for e in accounts.audit_entries(actions=["operator.update"])]
    assert updates == [{"password": "changed"}, {"disabled": False}, {"disabled": True}, {"role": "operator"}]
