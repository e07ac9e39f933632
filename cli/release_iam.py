"""``tornado release policy``: the least-privilege IAM role of a task version's AWS workers (docs/iam.md)."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace
from typing import Any

import click

from tornado_core.commands import load_settings, reported_errors
from tornado_core.errors import TaskNotFound, VersionNotFound


@click.command()
@click.argument("task")
@click.argument("version")
@click.option("--runtime", type=click.Choice(["lambda", "ecs"]), required=True, help="Where the workers run.")
@click.option("--create-role", is_flag=True, help="Create (or update) the role in IAM; prints its ARN.")
def policy(task: str, version: str, runtime: str, create_role: bool) -> None:
    """Print the IAM role VERSION's workers need on RUNTIME, and nothing more, as JSON."""
    from tornado_core.adapters.aws.clients import make_client
    from tornado_core.adapters.runtimes.iam import ensure_role
    from tornado_core.bootstrap import task_registry

    settings = load_settings()
    with reported_errors():
        registry = task_registry(os.environ.get("TORNADO_TASKS_MODULES", "").split())
        spec = None
        with contextlib.suppress(TaskNotFound, VersionNotFound):
            spec = registry.get(task, version)
        role = _runtime(runtime, settings, registry).worker_role(task, version, spec=spec)
        document = role.to_json()
        if create_role:
            iam = make_client("iam", region=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
            document["role_arn"] = ensure_role(iam, role, tags={"io.tornado.task": task})
    click.echo(json.dumps(document, indent=2))


def _runtime(name: str, settings: Any, registry: Any) -> Any:
    if name == "ecs":
        from tornado_core.adapters.runtimes.ecs.runtime import EcsRuntime

        return EcsRuntime(settings)
    from tornado_core.adapters.runtimes.lambda_.config import LambdaConfig
    from tornado_core.adapters.runtimes.lambda_.runtime import LambdaRuntime

    # Printing a role needs no role of its own: the check for TORNADO_LAMBDA_ROLE_ARN does not apply.
    config = replace(LambdaConfig.from_env(os.environ), create_role=True)
    return LambdaRuntime(settings, registry=registry, config=config)
