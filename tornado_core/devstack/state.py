"""The stack's state file (ports, pids, secret key) and its lock."""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado_core.devstack.errors import DevStackError
from tornado_core.local_machine import free_port

STATE_FILE = "state.json"


@dataclass
class StackState:
    """What must survive between ``tornado dev`` invocations.

    Attributes:
        postgres_port: TCP port of PostgreSQL on 127.0.0.1 (fixed at first ``up``).
        moto_port: TCP port of the SQS/S3 endpoint on 127.0.0.1.
        secret_key: The stack's ``TORNADO_SECRET_KEY``, generated once.
        moto_pid: Pid of the endpoint's server, if started.
        postgres_provisioned: Databases and migrations are in place.
        moto_provisioned_pid: Pid of the endpoint server the bucket was created on.
        companion_ports: Port of each companion service (``tornado.devstack`` door), by name.
        companion_pids: Pid of each companion service started, by name.
    """

    postgres_port: int
    moto_port: int
    secret_key: str
    moto_pid: int | None = None
    postgres_provisioned: bool = False
    moto_provisioned_pid: int | None = None
    companion_ports: dict[str, int] = dataclasses.field(default_factory=dict)
    companion_pids: dict[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def new(cls) -> StackState:
        """Fresh state with free ports and a new secret key."""
        return cls(
            postgres_port=free_port(),
            moto_port=free_port(),
            secret_key=secrets.token_urlsafe(32),
        )


def load_state(state_dir: Path) -> StackState | None:
    """The saved state, or ``None`` before the first ``up``."""
    path = state_dir / STATE_FILE
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DevStackError(f"state file {path} is unreadable: {exc}") from exc
    known = {f.name for f in dataclasses.fields(StackState)}
    try:
        return StackState(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise DevStackError(f"state file {path} is incomplete: {exc}") from exc


def save_state(state_dir: Path, state: StackState) -> None:
    """Write the state atomically (readable by the owner only: it holds the key)."""
    path = state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(dataclasses.asdict(state), handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)
