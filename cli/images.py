"""``tornado docker`` (the project's own Docker engine) and ``tornado image`` (offline image builds)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from tornado_core.devstack import default_state_dir
from tornado_core.errors import TornadoError

#: Exit code of ``status`` when the engine does not run (as LSB init scripts do).
NOT_RUNNING = 3

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TORNADO_STATE_DIR",
    default=None,
    help="Where the engine keeps data, socket and logs [default: $TORNADO_STATE_DIR or ./.tornado].",
)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except TornadoError as exc:
        raise click.ClickException(str(exc)) from None


def _engine(state_dir: Path | None) -> Any:
    from tornado_core.adapters.runtimes.docker.engine import DockerEngine

    return DockerEngine(state_dir or default_state_dir())


@click.group("docker")
def docker_engine() -> None:
    """Run the project's own Docker engine (Debian's dockerd; host network only, own socket)."""


@docker_engine.command()
@state_dir_option
def up(state_dir: Path | None) -> None:
    """Start the engine in the background (idempotent) and print how to use it."""
    engine = _engine(state_dir)
    with _errors():
        host = engine.up()
    click.echo(f"Docker engine is up (state in {engine.root}, log {engine.log_file})")
    click.echo(f'Use it in this shell:  eval "$(tornado docker env)"   # DOCKER_HOST={host}')


@docker_engine.command()
@state_dir_option
def down(state_dir: Path | None) -> None:
    """Stop the engine (and its containers); images and data are kept."""
    engine = _engine(state_dir)
    with _errors():
        engine.down()
    click.echo(f"Docker engine is stopped (data kept in {engine.root})")


@docker_engine.command()
@state_dir_option
def status(state_dir: Path | None) -> None:
    """Show whether the engine runs; exits 3 if not."""
    current = _engine(state_dir).status()
    if not current.running:
        click.echo(f"Docker engine is not running (state dir {current.state_dir})")
        raise SystemExit(NOT_RUNNING)
    click.echo(f"Docker engine {current.version}  pid {current.pid}  unix://{current.socket}")


@docker_engine.command()
@state_dir_option
def env(state_dir: Path | None) -> None:
    """Print `export DOCKER_HOST=...`: eval "$(tornado docker env)"."""
    for key, value in _engine(state_dir).env().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@click.group("image")
@state_dir_option
@click.pass_context
def image(ctx: click.Context, state_dir: Path | None) -> None:
    """Build Tornado's container images without a registry (offline base, host wheelhouse).

    Uses $DOCKER_HOST if set, else the project's own engine (started if needed).
    """
    ctx.obj = state_dir or default_state_dir()


def _client(state_dir: Path) -> Any:
    from tornado_core.adapters.runtimes.docker.engine import DockerEngine, connect

    if os.environ.get("DOCKER_HOST"):
        return connect(os.environ["DOCKER_HOST"])
    engine = DockerEngine(state_dir)
    engine.up()
    return engine.client()


def _say(line: str) -> None:
    click.echo(line, err=True)


@image.command("build-base")
@click.option("--tag", default=None, help="Image name [default: tornado/python:3.11-bookworm].")
@click.option("--suite", default="bookworm", show_default=True, help="Debian release.")
@click.option(
    "--mirror",
    default=None,
    help="Debian mirror (default: TORNADO_DEBIAN_MIRROR, else this machine's apt sources)",
)
@click.option("--rebuild", is_flag=True, help="Build from the mirror even if the image or its cache exists.")
@click.pass_obj
def build_base(state_dir: Path, tag: str | None, suite: str, mirror: str | None, rebuild: bool) -> None:
    """Make the offline base image exist: present, loaded from the cache, or debootstrapped (~1 min)."""
    from tornado_core.adapters.runtimes.images.builder import BASE_IMAGE, ensure_base_image

    with _errors():
        how = ensure_base_image(
            _client(state_dir), cache_dir=state_dir / "images", tag=tag or BASE_IMAGE,
            suite=suite, mirror=mirror, rebuild=rebuild, log=_say,
        )  # fmt: skip
    click.echo(f"{tag or BASE_IMAGE}: {how}")


@image.command("build")
@click.option("--task", "task_name", default=None, help="Task the image serves (label io.tornado.task).")
@click.option("--version", "version", required=True, help="Task version (label io.tornado.version).")
@click.option(
    "--context",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The task project (its own Dockerfile is used if present) [default: built-in tasks only].",
)
@click.option("--tag", default=None, help="Image name [default: tornado/<task>:<version>].")
@click.option("--base-image", default=None, help="Build arg BASE_IMAGE [default: the offline base].")
@click.option("--api", "api_image", is_flag=True, help="Build the HTTP API image instead of a worker.")
@click.option("--no-verify", is_flag=True, help="Skip checking that the image knows the task version.")
@click.pass_obj
def build(
    state_dir: Path,
    task_name: str | None,
    version: str,
    context: Path | None,
    tag: str | None,
    base_image: str | None,
    api_image: bool,
    no_verify: bool,
) -> None:
    """Build a task version's image (wheelhouse on this host, legacy builder, host network)."""
    from tornado_core.adapters.runtimes.images.builder import (
        BASE_IMAGE,
        ImageRequest,
        build_image,
        ensure_base_image,
        verify_task_image,
    )

    if task_name is None and not api_image:
        raise click.UsageError("--task is required (except with --api)")
    task_name = task_name or "api"
    request = ImageRequest(
        task=task_name, version=version, context=context, tag=tag,
        base_image=base_image or BASE_IMAGE, dockerfile="api" if api_image else "worker",
    )  # fmt: skip
    with _errors():
        client = _client(state_dir)
        if base_image is None:
            ensure_base_image(client, cache_dir=state_dir / "images", log=_say)
        built = build_image(client, request, cache_dir=state_dir / "images", log=_say)
        if not (no_verify or api_image):
            verify_task_image(client, built.tag, task_name, version)
    click.echo(f"{built.tag}  {built.image_id[:19]}  built in {built.seconds:.1f}s")
