"""The SPED part of ``tornado showcase``: an EFD ICMS/IPI file generated, downloaded and validated.

It seeds a company's month of fiscal documents into the stack's ERP database (``tornado sped
seed-erp``, under a fresh seed), asks for a period in the future (refused at once, 422), then for
last month's file split in two parts run by the part workers, follows it, downloads it through the
tenant's presigned link and checks it with ``tornado sped validate``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

from tornado_core.client import TornadoClient
from tornado_core.errors import ApiError
from tornado_core.ports.jobs import JobStatus
from tornado_core.services import Services

TASK = "sped.efd_icms_ipi"
PART_TASK = "sped.efd_part"
#: Documents of the showcase's company (about 4.5 lines each).
DOCUMENTS = 3000
PARTS = 2


@dataclass(frozen=True)
class SpedPlan:
    """The seeded company and its month."""

    cnpj: str
    start: date
    end: date
    lines: int


@dataclass(frozen=True)
class SpedSummary:
    """What the SPED part showed."""

    plan: SpedPlan
    refused_fields: list[str]
    result: dict[str, Any]
    seconds: float
    url: str
    validation: str


def prepare(env: dict[str, str]) -> SpedPlan:
    """Seed last month's documents of a new company (through ``tornado sped seed-erp``)."""
    seed = int(time.time() * 1000) % 1_000_000_000
    arguments = ["sped", "seed-erp", "--companies", "2", "--documents", str(DOCUMENTS), "--seed", str(seed)]
    seeded = json.loads(_tornado(env, *arguments, "--items-per-document", "1-8", "--json"))
    busy = next(company for company in seeded["companies"] if company["movement"])
    year, month = (int(part) for part in seeded["period"].split("-"))
    start = date(year, month, 1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return SpedPlan(cnpj=busy["cnpj"], start=start, end=end, lines=int(seeded["lines"]))


def run(url: str, token: str, services: Services, plan: SpedPlan, env: dict[str, str]) -> SpedSummary:
    """Ask for a future period (refused), then for the file in parts; download and validate it."""
    client = TornadoClient(url, token)
    future = plan.end + timedelta(days=40)
    try:
        client.submit(
            TASK, {"cnpj": plan.cnpj, "start": future.replace(day=1).isoformat(), "end": future.isoformat()}
        )
        refused: list[str] = []
    except ApiError as error:
        refused = [f"{f['field']}: {f['message']}" for f in error.fields or []]
    started = time.monotonic()
    payload = {
        "cnpj": plan.cnpj,
        "start": plan.start.isoformat(),
        "end": plan.end.isoformat(),
        "parts": PARTS,
    }
    job_id = client.submit(TASK, payload)["id"]
    result = _wait(services, job_id)
    seconds = time.monotonic() - started
    link = _get_json(f"{url}/v1/sped/files/{job_id}", token)["url"]
    with urllib.request.urlopen(link, timeout=60) as answer, tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"EFD-{plan.cnpj}-{plan.start:%Y%m}.txt"
        path.write_bytes(answer.read())
        validation = _tornado(env, "sped", "validate", str(path), check=False).strip()
    return SpedSummary(plan, refused, result, seconds, link, validation)


def _payload(cnpj: str, start: date, end: date) -> dict[str, Any]:
    return {"cnpj": cnpj, "start": start.isoformat(), "end": end.isoformat()}


def _wait(services: Services, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = services.jobs.get(job_id)
        if record is not None and record.status is JobStatus.SUCCEEDED and record.result is not None:
            return record.result
        if record is not None and record.status in (JobStatus.DEAD, JobStatus.FAILED):
            raise click.ClickException(f"the SPED job {job_id} ended {record.status}: {record.error_message}")
        time.sleep(0.2)
    raise click.ClickException(f"the SPED job {job_id} did not finish within {timeout:.0f}s")


def _get_json(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def _tornado(env: dict[str, str], *arguments: str, check: bool = True) -> str:
    command = [sys.executable, "-m", "tornado_cli", *arguments]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if check and run.returncode != 0:
        raise click.ClickException(f"tornado {' '.join(arguments)} failed: {run.stderr.strip()}")
    return run.stdout


def show(summary: SpedSummary) -> None:
    """Print the SPED part."""
    result, plan = summary.result, summary.plan
    seeded = f"{plan.lines:,} document lines seeded"
    click.echo(f"\nSPED EFD ICMS/IPI of {plan.start:%m/%Y} for CNPJ {plan.cnpj} ({seeded})")
    click.echo(f"  refused at submission (422)  {'; '.join(summary.refused_fields) or 'nothing?'}")
    records = result["records"]
    click.echo(
        f"  generated in {PARTS} parts       {result['lines']:,} lines, {result['bytes']:,} bytes,"
        f" {records.get('C100', 0):,} C100 / {records.get('C170', 0):,} C170 in {summary.seconds:.1f} s"
    )
    click.echo(f"  SHA-256                      {result['sha256']}")
    click.echo(f"  tornado sped validate        {summary.validation}")
    click.echo(f"  download link (5 min)        {summary.url}")
