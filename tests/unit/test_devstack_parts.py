"""Pieces of the local stack that need no running service."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tornado_core.adapters.postgres.admin import DatabaseAdminError, database_name, with_database
from tornado_core.devstack import DevStack, DevStackError, StackInfo, default_state_dir
from tornado_core.devstack.postgres import find_binaries
from tornado_core.devstack.state import StackState, load_state, save_state
from tornado_core.local_machine import free_port, is_alive, port_open


def fake_tools(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    return bin_dir


@pytest.fixture
def no_pgserver(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pgserver" else real(name, *a)
    )


def test_newest_system_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        fake_tools(tmp_path / version / "bin")
    found = find_binaries(system_root=tmp_path, search_path="")
    assert (found.bin_dir, found.source) == (tmp_path / "16" / "bin", "system")


def test_path_is_searched_next(tmp_path: Path, no_pgserver: None) -> None:
    bin_dir = fake_tools(tmp_path / "local" / "bin")
    found = find_binaries(system_root=tmp_path / "none", search_path=str(bin_dir))
    assert (found.bin_dir, found.source) == (bin_dir, "PATH")


def test_pgserver_wheel_is_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "pgserver"
    fake_tools(package / "pginstall" / "bin")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pgserver", raising=False)
    found = find_binaries(system_root=tmp_path / "none", search_path="")
    assert (found.bin_dir, found.source) == (package / "pginstall" / "bin", "pgserver")


def test_missing_postgres_tells_how_to_install_it(tmp_path: Path, no_pgserver: None) -> None:
    with pytest.raises(DevStackError, match=r"apt-get install postgresql.*pip install pgserver"):
        find_binaries(system_root=tmp_path, search_path="")


def test_state_round_trips_and_keeps_its_key_private(tmp_path: Path) -> None:
    assert load_state(tmp_path) is None
    state = StackState.new()
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert (tmp_path / "state.json").stat().st_mode & 0o077 == 0
    assert state.postgres_port != state.moto_port and len(state.secret_key) >= 32


def test_corrupt_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(DevStackError, match=r"state file .* is unreadable"):
        load_state(tmp_path)


def test_default_state_dir(tmp_path: Path) -> None:
    assert default_state_dir({}, cwd=tmp_path) == tmp_path / ".tornado"
    assert default_state_dir({"TORNADO_STATE_DIR": str(tmp_path / "s")}) == tmp_path / "s"


def test_dsn_helpers() -> None:
    dsn = "postgresql://postgres@127.0.0.1:5432/tornado"
    assert with_database(dsn, "other") == "postgresql://postgres@127.0.0.1:5432/other"
    assert database_name(dsn) == "tornado"
    with pytest.raises(DatabaseAdminError, match="expected a postgresql:// URL"):
        with_database("mysql://x/y", "z")


def test_info_env_lists_every_variable() -> None:
    info = StackInfo(
        database_url="d",
        erp_database_url="e",
        redshift_url="r",
        aws_endpoint_url="http://127.0.0.1:1",
        secret_key="k",
    )
    assert set(info.env()) == {
        "TORNADO_DATABASE_URL",
        "TORNADO_ERP_DATABASE_URL",
        "TORNADO_REDSHIFT_URL",
        "TORNADO_AWS_ENDPOINT_URL",
        "TORNADO_AWS_REGION",
        "TORNADO_BUCKET",
        "TORNADO_SECRET_KEY",
        "TORNADO_QUEUE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }


def test_process_helpers() -> None:
    assert is_alive(os.getpid()) and not is_alive(None) and not is_alive(0)
    assert not is_alive(os.getpid(), marker="certainly-not-in-this-command-line")
    assert not port_open(free_port())


def test_methods_that_need_a_stack_say_how_to_start_one(tmp_path: Path) -> None:
    stack = DevStack(tmp_path)
    for call in (stack.info, stack.create_database, stack.stop_postgres, stack.stop_moto):
        with pytest.raises(DevStackError, match="run `tornado dev up` first"):
            call()
    stack.down()  # nothing to stop is fine
