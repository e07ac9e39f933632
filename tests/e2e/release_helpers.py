"""Helpers of the release tests: a steady HTTP load of ``demo.release``, worker processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tornado_core.ports.jobs import JobRecord, JobStatus
from tornado_core.services import Services
from tornado_core.toolchain.steady_load import SteadyLoad

RELEASABLE = Path(__file__).resolve().parents[1] / "data" / "releasable"
TASK = "demo.release"


def code_of(version: str) -> list[str]:
    """``release deploy`` options loading ``demo.release`` VERSION from its own directory."""
    return ["--python-path", str(RELEASABLE / f"v{version[0]}"), "--tasks-module", "releasable"]


def release_load(api_url: str, token: str, rate: float) -> SteadyLoad:
    """A steady load of ``demo.release`` jobs that each record their effect in the ERP table."""
    return SteadyLoad(api_url, token, TASK, rate, payload=release_payload)


def release_payload(n: int) -> dict[str, Any]:
    """Job ``n`` of the load: a short run whose effect is counted in ``release_effects``."""
    return {"n": n, "seconds": 0.02, "record_effect": True}


def wait_all_done(services: Services, job_ids: list[str], *, timeout: float = 90.0) -> dict[str, JobRecord]:
    """Wait until every job is succeeded, dead or failed; returns their records."""
    deadline = time.monotonic() + timeout
    pending = set(job_ids)
    done: dict[str, JobRecord] = {}
    final = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.FAILED)
    while pending:
        for job_id in list(pending):
            record = services.jobs.get(job_id)
            if record is not None and record.status in final:
                done[job_id] = record
                pending.discard(job_id)
        if pending and time.monotonic() > deadline:
            sample = {j: (services.jobs.get(j) or "not recorded") for j in list(pending)[:3]}
            raise AssertionError(f"{len(pending)} job(s) not finished after {timeout:.0f}s, e.g. {sample}")
        time.sleep(0.2)
    return done


def worker_pids(state_dir: Path, version: str) -> list[int]:
    """Live ``tornado worker`` processes of a ``demo.release`` version started by the process runtime."""
    marker = str(state_dir / "runtime" / TASK / version)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if " worker " in cmdline and marker in cmdline and state not in ("Z", "X"):
            found.append(int(proc.name))
    return found
