"""Shared CLI plumbing: settings from the environment, services, clean error lines."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from tornado_core.errors import TornadoError
from tornado_core.services import Services
from tornado_core.settings import Settings


def load_settings() -> Settings:
    """Settings from ``os.environ`` (and ``TORNADO_SETTINGS_FILE``), as a CLI error if incomplete."""
    try:
        return Settings.load(os.environ)
    except TornadoError as exc:
        raise click.ClickException(
            f'{exc} — start the local stack with `eval "$(tornado dev env)"`'
        ) from None


@contextmanager
def cli_services() -> Iterator[Services]:
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
