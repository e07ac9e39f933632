"""``tornado submit`` and ``tornado jobs``: the API's client side, for people."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from tornado_core.client import ApiError, TornadoClient
from tornado_core.commands import api_url_option, token_option
from tornado_core.ports.schedules import MAX_SCHEDULE_AHEAD


def _client(api_url: str, token: str) -> TornadoClient:
    return TornadoClient(api_url, token)


def _call(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ApiError as exc:
        details = "".join(f"\n  {f['field']}: {f['message']}" for f in exc.fields)
        raise click.ClickException(f"{exc}{details}") from None
    except TimeoutError as exc:
        raise click.ClickException(str(exc)) from None


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.command()
@click.argument("task")
@click.argument("payload", default="{}")
@click.option("--idempotency-key", default=None, help="Same key, same job (safe re-submits).")
@click.option(
    "--delay",
    type=click.FloatRange(0, MAX_SCHEDULE_AHEAD),
    default=None,
    help="Seconds before the job may run (beyond 900 it waits 'scheduled' for `tornado scheduler`).",
)
@click.option("--wait", is_flag=True, help="Wait for the job to finish; exit 1 unless it succeeded.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait with --wait.")
@api_url_option
@token_option
def submit(
    task: str,
    payload: str,
    idempotency_key: str | None,
    delay: float | None,
    wait: bool,
    timeout: float,
    api_url: str,
    token: str,
) -> None:
    """Queue a TASK with a JSON PAYLOAD (e.g. '{"message": "hi"}'); prints the job."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="PAYLOAD") from None
    client = _client(api_url, token)
    job = _call(lambda: client.submit(task, data, idempotency_key=idempotency_key, delay=delay))
    if not wait:
        _echo_json(job)
        return
    _finish(_wait_with_bar(client, job["id"], timeout))


@click.group()
def jobs() -> None:
    """Inspect jobs."""


@jobs.command("show")
@click.argument("job_id")
@api_url_option
@token_option
def show(job_id: str, api_url: str, token: str) -> None:
    """Print one job: status, progress, result or error."""
    client = _client(api_url, token)
    _echo_json(_call(lambda: client.get(job_id)))


@jobs.command("cancel")
@click.argument("job_id")
@api_url_option
@token_option
def cancel(job_id: str, api_url: str, token: str) -> None:
    """Cancel a job: a waiting one never runs; a running one is stopped at its next progress report.

    Exits 1 with the API's message for an unknown job or one that has already finished.
    """
    _echo_json(_call(lambda: _client(api_url, token).cancel(job_id)))


@jobs.command("list")
@click.option("--task", default=None, help="Only this task.")
@click.option(
    "--status", default=None, help="Only this status (queued, running, retrying, succeeded, failed, dead)."
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--cursor", default=None, help="Continue after a previous page.")
@api_url_option
@token_option
def list_jobs(
    task: str | None, status: str | None, limit: int, cursor: str | None, api_url: str, token: str
) -> None:
    """List jobs, newest first."""
    client = _client(api_url, token)
    page = _call(lambda: client.list(task=task, status=status, limit=limit, cursor=cursor))
    for job in page.get("jobs", []):
        click.echo(
            f"{job['id']}  {job['task']:<20} {job['version']:<8} {job['status']:<10} "
            f"attempts={job['attempts']}"
        )
    if page.get("next_cursor"):
        click.echo(f"more: --cursor {page['next_cursor']}")


@jobs.command("wait")
@click.argument("job_id")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait.")
@api_url_option
@token_option
def wait_job(job_id: str, timeout: float, api_url: str, token: str) -> None:
    """Wait for a job to finish, with a progress bar; exit 1 unless it succeeded."""
    _finish(_wait_with_bar(_client(api_url, token), job_id, timeout))


def _finish(job: dict[str, Any]) -> None:
    """Print the finished job; exit 1 unless it succeeded (scripts and Jenkins read the code)."""
    _echo_json(job)
    if job["status"] != "succeeded":
        raise click.exceptions.Exit(1)


def _wait_with_bar(client: TornadoClient, job_id: str, timeout: float) -> dict[str, Any]:
    with click.progressbar(
        length=1000, label=f"job {job_id[:12]}…", file=click.get_text_stream("stderr")
    ) as bar:
        shown = [0]

        def update(job: dict[str, Any]) -> None:
            done = 1000 if job.get("status") == "succeeded" else int(1000 * float(job.get("progress") or 0))
            if done > shown[0]:
                bar.update(done - shown[0])
                shown[0] = done

        return dict(_call(lambda: client.wait(job_id, timeout=timeout, on_update=update)))
