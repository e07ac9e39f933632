"""What the Docker and ECS runtimes agree on with Tornado's images.

Labels that find a version's containers, the worker command, and the health check
that reads the age of the worker's health file (touched at every poll).
"""

from __future__ import annotations

import re

from tornado_core.ports.runtime import Deployment

TASK_LABEL = "io.tornado.task"
VERSION_LABEL = "io.tornado.version"
MANAGED_LABEL = "io.tornado.managed"
PREFIX_LABEL = "io.tornado.prefix"
#: The health file inside containers (``/tmp`` is writable by the non-root user).
HEALTH_FILE = "/tmp/tornado-alive"
#: Seconds a stop grants on top of the worker's grace period (make unfinished
#: messages visible again, close pools, exit).
STOP_MARGIN = 15
#: Exit 0 while ``$TORNADO_HEALTH_FILE`` is younger than ``$TORNADO_HEALTH_MAX_AGE``
#: seconds. ``python3 -I -S``: about 15 ms of CPU per check, no import of tornado.
HEALTH_CODE = (
    "import os, sys, time; sys.exit(time.time() - os.stat(os.environ['TORNADO_HEALTH_FILE']).st_mtime"
    " > float(os.environ['TORNADO_HEALTH_MAX_AGE']))"
)


def health_check_argv() -> list[str]:
    """The health check command, as Docker's and ECS's ``["CMD", ...]`` form."""
    return ["CMD", "python3", "-I", "-S", "-c", HEALTH_CODE]


def health_env(poll_wait: float) -> dict[str, str]:
    """Variables the health check reads; the file may age by one long poll and some slack."""
    return {"TORNADO_HEALTH_FILE": HEALTH_FILE, "TORNADO_HEALTH_MAX_AGE": str(int(poll_wait) + 25)}


def grace_seconds(grace_period: float) -> int:
    """A grace period as whole seconds, rounded up, at least 1."""
    return max(int(grace_period + 0.999), 1)


def worker_command(deployment: Deployment, *, poll_wait: float) -> list[str]:
    """``tornado worker`` for the deployment's version, touching the health file."""
    return [
        "tornado", "worker",
        "--task", deployment.task,
        "--version", deployment.version,
        "--concurrency", str(deployment.concurrency),
        "--grace-period", str(grace_seconds(deployment.grace_period)),
        "--poll-wait", str(poll_wait),
        "--health-file", HEALTH_FILE,
    ]  # fmt: skip


def workload_name(prefix: str, task: str, version: str, *, allowed: str, limit: int = 255) -> str:
    """``<prefix>-<task>-<version>`` with characters outside ``allowed`` (a regex class) as ``-``."""
    name = re.sub(f"[^{allowed}]+", "-", f"{prefix}-{task}-{version}").strip("-_.")
    return name[:limit] or "tornado"
