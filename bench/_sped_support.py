"""Plumbing of ``bench.sped``: CPU of the stack's servers, the object's download, the code's version."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT, CpuMeter, tree_cpu
from tornado_core.devstack import BUCKET

MIB = 1024 * 1024


@dataclass
class StackCpu:
    """CPU seconds of PostgreSQL (exited backends included) and moto while a child ran; machine busy."""

    groups: dict[str, int | None]
    used: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0
    _start: dict[str, float] = field(default_factory=dict)
    _meter: CpuMeter | None = None

    def start(self) -> StackCpu:
        self._start = {n: tree_cpu(p, reaped=True) for n, p in self.groups.items() if p}
        self._meter = CpuMeter({}).start()
        return self

    def stop(self) -> StackCpu:
        assert self._meter is not None
        self.busy = self._meter.stop().machine_busy
        self.used = {n: tree_cpu(self.groups[n] or 0, reaped=True) - v for n, v in self._start.items()}
        return self

    def note(self, seconds: float) -> str:
        """``postgres 0.21, moto 0.05 cores; machine 55 % busy``."""
        cores = ", ".join(f"{n} {v / seconds:.2f}" for n, v in self.used.items())
        return f"{cores} cores; machine {self.busy:.0%} busy"


def download(client: Any, key: str, path: Path) -> tuple[str, int]:
    """Stream the object to ``path``; its SHA-256 and size."""
    digest, size = hashlib.sha256(), 0
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
    with path.open("wb") as out:
        for chunk in body.iter_chunks(MIB):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def temp_file(suffix: str) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix="tornado-bench-sped-", suffix=suffix)
    os.close(handle)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def source_version() -> str:
    """The commit the generator and validator come from, ``+ uncommitted`` if tasks/sped is edited."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "tasks/sped")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted tasks/sped edits" if dirty else "")


class Discard:
    """A byte stream that keeps nothing."""

    def write(self, data: bytes, /) -> int:
        return len(data)
