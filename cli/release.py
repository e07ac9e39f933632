"""``tornado release``: roll task versions with no downtime (and ``tornado supervise``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from tornado_cli.release_iam import policy
from tornado_cli.release_view import backlog_bar, backlog_lines, status_table

from tornado_core.commands import load_settings, reported_errors
from tornado_core.releases.manager import DeployRequest, ReleaseManager
from tornado_core.releases.rollout import Rollout, RunPlan

_F = TypeVar("_F", bound=Callable[..., Any])


def runtime_state_dir() -> Path:
    """The process runtime's folder: ``$TORNADO_STATE_DIR/runtime`` or ``./.tornado/runtime``."""
    from tornado_core.devstack import default_state_dir

    return default_state_dir() / "runtime"


@contextmanager
def release_manager() -> Iterator[ReleaseManager]:
    """A release manager for one command; Tornado errors become one ``Error:`` line and exit 1."""
    from tornado_core.bootstrap import build_release_manager, services_from

    settings = load_settings()
    with reported_errors(), services_from(settings) as services:
        manager, close = build_release_manager(services, state_dir=runtime_state_dir())
        try:
            yield manager
        finally:
            close()


def _deploy_options(command: _F) -> _F:
    options = [
        click.option(
            "--runtime",
            type=click.Choice(["process", "docker", "ecs", "lambda"]),
            default="process",
            show_default=True,
        ),
        click.option("--replicas", default=1, show_default=True, type=click.IntRange(1, 1000)),
        click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256)),
        click.option(
            "--grace-period", type=float, default=None, help="Seconds to finish on stop [task timeout + 10]."
        ),
        click.option("--image", default=None, help="Container image (docker, ecs, lambda)."),
        click.option("--tasks-module", default=None, help="Module declaring the task (if no entry point)."),
        click.option(
            "--python-path",
            type=click.Path(exists=True, file_okay=False, resolve_path=True),
            default=None,
            help="Directory holding this version's code (process; lambda: its wheels, docs/lambda.md).",
        ),
        click.option("--smoke/--no-smoke", default=False, show_default=True, help="Run a pinned smoke job."),
        click.option(
            "--smoke-payload", default="{}", show_default=True, help="JSON payload of the smoke job."
        ),
        click.option(
            "--timeout", default=120.0, show_default=True, help="Seconds to wait for healthy workers."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _request(task: str, version: str, options: dict[str, Any]) -> DeployRequest:
    try:
        payload = json.loads(options["smoke_payload"])
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--smoke-payload") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--smoke-payload")
    return DeployRequest(
        task=task,
        version=version,
        runtime=options["runtime"],
        replicas=options["replicas"],
        concurrency=options["concurrency"],
        grace_period=options["grace_period"],
        image=options["image"],
        python_path=options["python_path"],
        tasks_module=options["tasks_module"],
        smoke=options["smoke"],
        smoke_payload=payload,
        timeout=options["timeout"],
    )


@click.group()
def release() -> None:
    """Roll task versions: deploy, ramp, promote, drain, retire, or roll back (docs/releases.md)."""


release.add_command(policy)


@release.command()
@click.argument("task")
@click.argument("version")
@_deploy_options
def deploy(task: str, version: str, **options: Any) -> None:
    """Start VERSION's workers (queues, healthy workers, optional smoke job); no jobs routed yet."""
    request = _request(task, version, options)
    with release_manager() as manager:
        done = manager.deploy(request)
    click.echo(f"{task} {version}: {done.state} ({request.replicas} worker(s) healthy on {request.runtime})")


@release.command()
@click.argument("task")
@click.argument("version")
def promote(task: str, version: str) -> None:
    """Route every new job of TASK to VERSION (the old current version starts draining)."""
    with release_manager() as manager:
        manager.promote(task, version)
    click.echo(f"{task} {version} is current: new jobs go to it")


@release.command()
@click.argument("task")
@click.argument("version")
@click.option(
    "--percent", required=True, type=click.IntRange(0, 100), help="Share of new jobs (0 ends the ramp)."
)
def ramp(task: str, version: str, percent: int) -> None:
    """Send PERCENT % of TASK's new jobs to VERSION (chosen by job id)."""
    with release_manager() as manager:
        manager.ramp(task, version, percent)
    click.echo(f"{task} {version} gets {percent}% of new jobs")


@release.command()
@click.argument("task")
@click.argument("version", required=False)
@click.option("--tenant", required=True, help="The tenant to pin.")
@click.option("--clear", is_flag=True, help="Remove the tenant's pin.")
def pin(task: str, version: str | None, tenant: str, clear: bool) -> None:
    """Route every new job of TENANT to VERSION (or --clear the pin)."""
    if bool(version) == clear:
        raise click.UsageError("give a VERSION or --clear (not both)")
    with release_manager() as manager:
        manager.pin(task, tenant, None if clear else version)
    click.echo(f"{task}: tenant {tenant} " + ("unpinned" if clear else f"pinned to {version}"))


@release.command()
@click.argument("task")
@click.argument("version")
@click.option(
    "--timeout", type=float, default=None, help="Give up after this many seconds (nothing changes)."
)
def drain(task: str, version: str, timeout: float | None) -> None:
    """Wait until VERSION has no queued, in-flight or running job, then stop its workers."""
    with release_manager() as manager, backlog_bar(f"draining {task} {version}") as feed:
        done = manager.drain(task, version, timeout=timeout, on_progress=feed)
    click.echo(f"{task} {version}: {done.state}")


@release.command()
@click.argument("task")
@click.argument("version")
def retire(task: str, version: str) -> None:
    """Stop a drained VERSION for good (it can no longer be rolled back to)."""
    with release_manager() as manager:
        manager.retire(task, version)
    click.echo(f"{task} {version}: retired")


@release.command()
@click.argument("task")
@click.option("--version", default=None, help="The bad version [the ramping one, else the current one].")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to move its jobs.")
def rollback(task: str, version: str | None, timeout: float) -> None:
    """Route back to the previous version and move the bad version's jobs (queue and DLQ) to it."""
    with release_manager() as manager, backlog_bar(f"rolling back {task}") as feed:
        done = manager.rollback(task, version=version, timeout=timeout, on_progress=feed)
    click.echo(f"{task} {done.version}: {done.detail}")


@release.command()
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of the table.")
def status(task: str, as_json: bool) -> None:
    """Versions of TASK: state, role, workers, queue, DLQ, success and error rates."""
    with release_manager() as manager:
        rows = manager.status(task)
        route = manager.store.route(task)
    if as_json:
        routing = (
            {
                "current": route.current,
                "ramping": route.ramping,
                "percent": route.ramp_percent,
                "pins": dict(route.pins),
            }
            if route
            else None
        )
        click.echo(
            json.dumps({"task": task, "route": routing, "versions": [r.to_json() for r in rows]}, indent=2)
        )
        return
    click.echo(status_table(rows))


@release.command()
@click.argument("task")
@click.argument("version")
@_deploy_options
@click.option("--strategy", type=click.Choice(["bluegreen", "canary"]), default="canary", show_default=True)
@click.option("--steps", default="10,50,100", show_default=True, help="Canary ramp percentages.")
@click.option("--max-error-rate", default=2.0, show_default=True, help="Points above the old version's rate.")
@click.option(
    "--step-wait", default=30.0, show_default=True, help="Seconds each step is watched (bake time)."
)
@click.option(
    "--min-jobs", default=10, show_default=True, type=click.IntRange(1), help="Attempts to judge a step."
)
@click.option(
    "--step-timeout", type=float, default=None, help="Seconds to wait for --min-jobs [10 x step wait]."
)
@click.option("--drain-timeout", type=float, default=600.0, show_default=True)
def run(task: str, version: str, **options: Any) -> None:
    """Deploy VERSION, ramp it step by step, gate on error rates, promote, drain and retire the old one."""
    try:
        steps = tuple(int(p) for p in options.pop("steps").split(","))
    except ValueError:
        raise click.BadParameter(
            "comma-separated percentages, e.g. 10,50,100", param_hint="--steps"
        ) from None
    plan = RunPlan(
        deploy=_request(task, version, options),
        strategy=options["strategy"],
        steps=steps,
        max_error_rate=options["max_error_rate"],
        step_wait=options["step_wait"],
        min_jobs=options["min_jobs"],
        step_timeout=options["step_timeout"],
        drain_timeout=options["drain_timeout"],
    )
    with release_manager() as manager:
        result = Rollout(manager, note=click.echo, progress=backlog_lines("waiting")).run(plan)
    if result.outcome == "rolled_back":
        raise click.ClickException(f"{task} {version} was rolled back: {result.verdicts[-1].reason}")
    click.echo(
        f"released {task} {version}" + (f"; retired {', '.join(result.retired)}" if result.retired else "")
    )


@release.command(hidden=True)
@click.argument("task")
@click.argument("version")
def describe(task: str, version: str) -> None:
    """Print the contract (JSON Schema, queue settings) of TASK VERSION from the code at hand."""
    from tornado_core.bootstrap import task_registry
    from tornado_core.errors import TaskNotFound, VersionNotFound
    from tornado_core.versions import DESCRIBE_NOT_FOUND, contract_of

    modules = os.environ.get("TORNADO_TASKS_MODULES", "").split()
    try:
        spec = task_registry(modules).get(task, version)
    except (TaskNotFound, VersionNotFound) as exc:
        click.echo(str(exc), err=True)
        sys.exit(DESCRIBE_NOT_FOUND)
    click.echo(json.dumps(contract_of(spec).to_json()))


@click.command(hidden=True)
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
def supervise(directory: Path) -> None:
    """Run and restart the workers described in DIR/spec.json until SIGTERM (process runtime)."""
    from tornado_core.adapters.runtimes.process.supervisor import Supervisor

    sys.exit(Supervisor(directory, dict(os.environ)).run())
