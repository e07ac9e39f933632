"""``tornado pipeline``: a task project's release pipeline, on this machine or one stage for Jenkins."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from tornado_core.toolchain.pipeline import (
    STAGES,
    CommandRunner,
    PipelineError,
    PipelineOptions,
    Project,
    StageContext,
    StageResult,
    run_stage,
    run_stages,
)


def _steps(value: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a list of percentages like 10,50,100") from None
    if not steps or any(not 0 < p <= 100 for p in steps):
        raise click.BadParameter("percentages go from 1 to 100")
    return steps


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options `run` and `step` share."""
    decorators = [
        click.option(
            "--project",
            type=click.Path(file_okay=False, exists=True, path_type=Path),
            default=Path(),
            show_default=True,
            help="The task project (made by `tornado newtask`).",
        ),
        click.option(
            "--runtime",
            type=click.Choice(["docker", "process", "ecs"]),
            default="docker",
            show_default=True,
            help="Where the new version's workers run.",
        ),
        click.option("--replicas", type=click.IntRange(1, 999), default=1, show_default=True),
        click.option("--strategy", type=click.Choice(["bluegreen", "canary"]), default="bluegreen"),
        click.option("--canary-steps", default="10,50,100", show_default=True, help="Canary percentages."),
        click.option("--max-error-rate", type=click.FloatRange(0, 100), default=2.0, show_default=True),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


@click.group()
def pipeline() -> None:
    """Release a task project: the Jenkins pipeline's stages, here or one at a time."""


@pipeline.command("stages")
def list_stages() -> None:
    """List the stages (the same as the Jenkins pipeline's)."""
    for number, item in enumerate(STAGES, start=1):
        click.echo(f"{number}. {item.name:<20} [{item.key}] {item.summary}")


@pipeline.command("run")
@click.option("--local", is_flag=True, help="Run on this machine (local stack, Docker engine).")
@_options
def run(local: bool, **raw: Any) -> None:
    """Run every stage: test, build, deploy, smoke, promote, retire the old version.

    Pushing becomes a local image tag and the approval is automatic. If a stage
    after the deploy fails, the release is rolled back.
    """
    if not local:
        raise click.UsageError("only --local runs here; Jenkins runs `tornado pipeline step STAGE` per stage")
    options = _build_options("local", raw)
    env = _local_env(raw["project"], docker=options.runtime == "docker")
    ctx = _context(raw["project"], options, env)
    results = run_stages(ctx)
    _summary(results)
    if any(r.status == "failed" for r in results):
        raise click.ClickException("the pipeline failed")


@pipeline.command("step")
@click.argument("stage_key", metavar="STAGE")
@click.option("--target", type=click.Choice(["jenkins", "local"]), default="jenkins", show_default=True)
@click.option("--registry", default=None, envvar="TORNADO_REGISTRY", help="Image registry (ECR host).")
@_options
def step(stage_key: str, target: str, registry: str | None, **raw: Any) -> None:
    """Run one STAGE (what each Jenkins stage does), e.g. `tornado pipeline step deploy`."""
    options = _build_options(target, raw, registry=registry)
    ctx = _context(raw["project"], options, dict(os.environ))
    try:
        run_stage(stage_key, ctx)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from None


def _build_options(target: str, raw: dict[str, Any], *, registry: str | None = None) -> PipelineOptions:
    return PipelineOptions(
        target="local" if target == "local" else "jenkins",
        runtime=raw["runtime"],
        replicas=raw["replicas"],
        registry=registry or "localhost",
        strategy=raw["strategy"],
        canary_steps=_steps(raw["canary_steps"]),
        max_error_rate=raw["max_error_rate"],
    )


def _context(project_dir: Path, options: PipelineOptions, env: dict[str, str]) -> StageContext:
    root = project_dir.resolve()
    try:
        project = Project.load(root)
    except PipelineError as exc:
        raise click.ClickException(str(exc)) from None
    return StageContext(
        project=project,
        options=options,
        run=subprocess_runner(env),
        say=click.echo,
        home=root,
    )


def _local_env(project_dir: Path, *, docker: bool) -> dict[str, str]:
    """This environment, pointed at the local stack and Docker engine (the project's own if none is set)."""
    from tornado_core.devstack import DevStack, default_state_dir
    from tornado_core.errors import TornadoError

    env = dict(os.environ)
    state_dir = default_state_dir(env, cwd=project_dir.resolve())
    try:
        if not env.get("TORNADO_DATABASE_URL"):
            env.update(DevStack(state_dir).up().env())
            click.echo(f"local stack: {state_dir} (stop it with `tornado dev down`)")
        if docker and not env.get("DOCKER_HOST"):
            from tornado_core.adapters.runtimes.docker.engine import DockerEngine

            engine = DockerEngine(state_dir)
            engine.up()
            env["DOCKER_HOST"] = engine.docker_host
            click.echo(f"Docker engine: {env['DOCKER_HOST']} (stop it with `tornado docker down`)")
    except TornadoError as exc:
        raise click.ClickException(f"the local services did not start: {str(exc).splitlines()[0]}") from None
    return env


def subprocess_runner(env: Mapping[str, str]) -> CommandRunner:
    """Runs commands with ``env``, echoing each; their output goes straight to the console."""

    def run(argv: Sequence[str], *, cwd: Path, capture: bool = False) -> str:
        shown = ["tornado", *argv[3:]] if list(argv[1:3]) == ["-m", "tornado_cli"] else list(argv)
        click.echo("    $ " + " ".join(shown))
        try:
            result = subprocess.run(
                list(argv),
                cwd=cwd,
                env=dict(env),
                text=True,
                check=False,
                stdout=subprocess.PIPE if capture else None,
            )
        except OSError as exc:
            raise PipelineError(f"cannot run {argv[0]}: {exc}") from None
        if result.returncode != 0:
            raise PipelineError(f"`{' '.join(shown)}` exited with {result.returncode}")
        return result.stdout or ""

    return run


def _summary(results: list[StageResult]) -> None:
    click.echo("")
    for result in results:
        seconds = f"{result.seconds:6.1f}s" if result.status != "skipped" else "       "
        click.echo(f"  {result.status:<8} {seconds}  {result.stage.name}")
