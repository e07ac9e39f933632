"""A worker or intake badly configured stops at start with one clear line, never a hang or a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tornado_cli.main import cli

from tornado_core.local_machine import free_port

pytestmark = pytest.mark.integration

#: A task module whose package gives no version (no ``__version__``, no ``version=``).
UNVERSIONED = """
from pydantic import BaseModel

from tornado_core import task


class Empty(BaseModel):
    pass


@task(name="shop.unversioned", payload=Empty)
def unversioned(ctx, payload):
    return None
"""


@pytest.fixture
def run(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``tornado ARGS`` in this process, with the stack's settings and ``env`` on top."""
    for name in ("TORNADO_QUEUE", "TORNADO_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env={**stack_env, **(env or {})}, catch_exceptions=False)

    return invoke


def test_an_unknown_engine_is_a_usage_error(run: Callable[..., Result]) -> None:
    result = run("worker", "--task", "demo.echo", "--engine", "kafka")
    assert result.exit_code == 2
    assert "Invalid value for '--engine': 'kafka' is not one of 'postgres', 'sqs', 'celery'" in result.output


def test_the_celery_engine_without_a_broker_says_what_to_set(run: Callable[..., Result]) -> None:
    result = run("worker", "--task", "demo.echo", "--engine", "celery")
    assert result.exit_code == 1
    assert "queue_backend 'celery' needs broker_url (set TORNADO_BROKER_URL=" in result.output


def test_an_unreachable_broker_is_one_line_at_start(run: Callable[..., Result]) -> None:
    port = free_port()
    result = run(
        "worker", "--task", "demo.echo", "--engine", "celery",
        env={"TORNADO_BROKER_URL": f"redis://:secret@127.0.0.1:{port}/0", "TORNADO_REQUEST_DEADLINE": "2"},
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"Redis at 127.0.0.1:{port}/0 is unreachable" in result.output
    assert "secret" not in result.output and "Traceback" not in result.output


def test_a_task_without_a_version_stops_the_worker_at_start(
    run: Callable[..., Result], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop_unversioned.py").write_text(UNVERSIONED)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("worker", "--task", "shop.unversioned", "--tasks-module", "shop_unversioned")
    assert result.exit_code == 1
    assert (
        "tasks module 'shop_unversioned': cannot tell the version of shop_unversioned: set __version__ "
        "in its package or pass version=" in result.output
    )


def test_the_intake_needs_the_celery_engine(run: Callable[..., Result]) -> None:
    result = run("intake", env={"TORNADO_QUEUE": "postgres"})
    assert result.exit_code == 1
    assert "the intake reads tornado.submit messages from a Celery broker" in result.output
