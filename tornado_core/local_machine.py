"""This machine: free ports, detached daemons, liveness, file locks and the project's state folder.

A neutral floor shared by the dev stack (``tornado_core.devstack``) and the local runtimes
(``tornado_core.adapters.runtimes``), so neither has to import the other. See
docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tornado_core.errors import TornadoError

#: Overrides where the project keeps its local state (``./.tornado`` by default).
STATE_DIR_ENV = "TORNADO_STATE_DIR"
#: The lock file inside a state folder.
LOCK_FILE = ".lock"

#: Runs in a short-lived Python: starts argv[2:] in its own session with its
#: output in the log file argv[1], prints the pid and exits, so the daemon is
#: adopted by init and outlives (and is never a zombie of) the caller.
_LAUNCHER = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,"
    " stderr=subprocess.STDOUT, start_new_session=True)\n"
    "print(p.pid)\n"
)


class LocalProcessError(TornadoError):
    """A local process could not be started or stopped."""


def default_state_dir(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """``$TORNADO_STATE_DIR`` if set, else ``./.tornado`` in ``cwd``."""
    env = os.environ if env is None else env
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV]).expanduser().resolve()
    return ((cwd or Path.cwd()) / ".tornado").resolve()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``state_dir`` so concurrent users of it serialize."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tornado_argv(*args: str) -> list[str]:
    """The command line that runs ``tornado ARGS`` with this Python (the console script may be off PATH)."""
    return [sys.executable, "-m", "tornado_cli", *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, *, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def is_alive(pid: int | None, *, marker: str | None = None) -> bool:
    """Whether ``pid`` runs (zombies count as dead).

    Args:
        pid: The process id; ``None`` is never alive.
        marker: If given, the command line must contain it (guards against
            a recycled pid).
    """
    if not pid or pid <= 0:
        return False
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if state in ("Z", "X"):
            # Dead, unless other threads of it are still exiting (they hold its ports).
            return len(os.listdir(proc / "task")) > 1
    except (OSError, IndexError):
        return False
    return marker is None or marker in cmdline


def spawn_detached(
    argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start ``argv`` as a daemon in its own session, output appended to ``log``.

    Returns:
        The daemon's pid.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(log), *argv],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        check=False,
    )
    if result.returncode != 0:
        raise LocalProcessError(f"could not start {argv[0]}: {result.stderr.strip()}")
    return int(result.stdout.strip())


def terminate(pid: int | None, *, marker: str | None = None, grace: float = 10.0) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it outlives ``grace`` seconds."""
    if pid is None or not is_alive(pid, marker=marker):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not is_alive(pid, marker=marker), timeout=wait):
            return
    raise LocalProcessError(f"process {pid} did not stop")


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ("" if it is missing)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def with_descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (children first found through ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


@contextlib.contextmanager
def paused(pids: Sequence[int]) -> Iterator[None]:
    """Freeze processes (SIGSTOP) for a block, then let them go on (SIGCONT).

    A paused server still accepts TCP connections (its kernel does) but answers nothing: the
    stalled backend that deadlines exist for.
    """
    stopped: list[int] = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
