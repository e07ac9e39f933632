"""CLI plumbing shared by the ``tornado`` command and the command groups that plugins add.

Settings from the environment, services for one command, one clear error line instead of a
traceback, and the options that point a command at the API. Plugins reach it through
:mod:`tornado_core.extend`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType

import click

from tornado_core.errors import TornadoError
from tornado_core.services import Services
from tornado_core.settings import Settings


def load_settings(overrides: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``os.environ`` (and ``TORNADO_SETTINGS_FILE``), as a CLI error if incomplete.

    Args:
        overrides: Variables that win over the environment's (a command's options, such as
            ``tornado worker --engine``).
    """
    try:
        return Settings.load({**os.environ, **(overrides or {})})
    except TornadoError as exc:
        raise click.ClickException(
            f'{exc} — start the local stack with `eval "$(tornado dev env)"`'
        ) from None


@contextmanager
def command_services() -> Iterator[Services]:
    """Services for one command; any Tornado error becomes one clear line and exit 1."""
    from tornado_core.bootstrap import services_from

    settings = load_settings()
    with reported_errors(), services_from(settings) as services:
        yield services


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn Tornado errors into ``Error: ...`` and exit code 1."""
    try:
        yield
    except TornadoError as exc:
        raise click.ClickException(str(exc)) from None


api_url_option = click.option(
    "--api-url",
    envvar="TORNADO_API_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The Tornado API (env TORNADO_API_URL).",
)
token_option = click.option(
    "--token", envvar="TORNADO_TOKEN", required=True, help="Tenant bearer token (env TORNADO_TOKEN)."
)


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event set by SIGTERM or SIGINT (a long-running command finishes the batch at hand, then ends).

    Args:
        log: Where the signal's arrival is told.
    """
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the batch at hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
