"""A real PostgreSQL server in the state dir: find binaries, initdb, start, stop."""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tornado_core.devstack.errors import DevStackError, PortTaken
from tornado_core.local_machine import is_alive, port_open, tail, wait_until

#: The cluster's superuser (trust auth on loopback only).
SUPERUSER = "postgres"
#: System user created to run PostgreSQL when we are root and ``postgres`` is missing.
FALLBACK_OS_USER = "tornado-pg"
#: Longest unix socket path the kernel accepts (sun_path is 108 bytes).
_MAX_SOCKET_PATH = 107
_INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found; install them "
    "(Debian/Ubuntu: `apt-get install postgresql`) or the bundled wheel (`pip install pgserver`)"
)


@dataclass(frozen=True)
class PgBinaries:
    """Where ``initdb`` and ``pg_ctl`` live, and where they were found."""

    bin_dir: Path
    source: str

    def tool(self, name: str) -> str:
        """Absolute path of one PostgreSQL program."""
        return str(self.bin_dir / name)


@dataclass(frozen=True)
class OsUser:
    """The unprivileged system user PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int


def find_binaries(
    *, system_root: Path = Path("/usr/lib/postgresql"), search_path: str | None = None
) -> PgBinaries:
    """System PostgreSQL first (/usr/lib/postgresql/*/bin, then PATH), then ``pgserver``.

    Args:
        system_root: Where distributions install versioned PostgreSQL trees.
        search_path: ``PATH`` to search; the process's by default.

    Raises:
        DevStackError: Neither is installed.
    """
    versions = sorted(
        system_root.glob("*/bin"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
        reverse=True,
    )
    for bin_dir in versions:
        if _has_tools(bin_dir):
            return PgBinaries(bin_dir, "system")
    on_path = shutil.which("initdb", path=search_path)
    if on_path and _has_tools(Path(on_path).resolve().parent):
        return PgBinaries(Path(on_path).resolve().parent, "PATH")
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin"
        if _has_tools(bundled):
            return PgBinaries(bundled, "pgserver")
    raise DevStackError(_INSTALL_HINT)


def _has_tools(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def server_os_user() -> OsUser | None:
    """The user to run PostgreSQL as: ``None`` unless we are root (it refuses root).

    Uses ``postgres`` if it exists, else creates the system user ``tornado-pg``.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_OS_USER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return OsUser(name, entry.pw_uid, entry.pw_gid)
    _run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
        what=f"create the system user {FALLBACK_OS_USER}",
    )
    entry = pwd.getpwnam(FALLBACK_OS_USER)
    return OsUser(FALLBACK_OS_USER, entry.pw_uid, entry.pw_gid)


class PostgresServer:
    """One PostgreSQL cluster under ``base_dir`` listening on 127.0.0.1:``port``.

    Layout: ``data/`` (the cluster), ``run/`` (its unix socket), ``postgres.log``.

    Args:
        base_dir: Directory owned by the stack for this server.
        port: TCP port on 127.0.0.1.
        binaries: Where the programs are; found with :func:`find_binaries` if omitted.
        os_user: Who runs the server; :func:`server_os_user` if omitted.
    """

    def __init__(
        self,
        base_dir: Path,
        port: int,
        *,
        binaries: PgBinaries | None = None,
        os_user: OsUser | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.port = port
        self._binaries = binaries
        self._os_user = os_user
        self._os_user_known = os_user is not None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self.base_dir / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        """Directory of the server's unix socket (inside the state dir)."""
        return self.base_dir / "run"

    def dsn(self, database: str) -> str:
        """libpq URI of ``database`` as the superuser over TCP."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def initialized(self) -> bool:
        """Whether ``initdb`` has run."""
        return (self.data_dir / "PG_VERSION").exists()

    def pid(self) -> int | None:
        """The postmaster's pid if it runs."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if is_alive(pid, marker="postgres") else None

    def running(self) -> bool:
        """Whether the postmaster runs."""
        return self.pid() is not None

    def init(self) -> None:
        """Create the cluster (trust auth, UTF-8, C locale) unless it exists."""
        if self.initialized():
            return
        self._prepare_dirs()
        self._as_server(
            [
                self._bins().tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            what="initialize the PostgreSQL cluster",
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# Tornado dev stack settings (rewritten at every start)\ninclude 'tornado.conf'\n")

    def start(self) -> None:
        """Start the server and wait until it accepts connections; no-op if running.

        Raises:
            DevStackError: The port is taken or the server did not come up.
        """
        if self.running():
            return
        if not wait_until(lambda: not port_open(self.port), timeout=5.0):
            raise PortTaken(self.port, "PostgreSQL")
        self._prepare_dirs()
        self._write_settings()
        try:
            self._as_server(
                [
                    self._bins().tool("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "-s",
                    "start",
                ],
                what="start PostgreSQL",
            )
        except DevStackError:
            if port_open(self.port) and not self.running():  # taken between the check and the bind
                raise PortTaken(self.port, "PostgreSQL") from None
            raise

    def stop(self) -> None:
        """Stop the server (fast mode: clients are disconnected); no-op if stopped."""
        if not self.running():
            return
        self._as_server(
            [
                self._bins().tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "-s",
                "stop",
            ],
            what="stop PostgreSQL",
        )

    def _bins(self) -> PgBinaries:
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    def _user(self) -> OsUser | None:
        if not self._os_user_known:
            self._os_user = server_os_user()
            self._os_user_known = True
        return self._os_user

    def _prepare_dirs(self) -> None:
        for path in (self.base_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
        user = self._user()
        if user is None:
            return
        for path in (self.base_dir, self.socket_dir):
            os.chown(path, user.uid, user.gid)
        probe = subprocess.run(
            ["test", "-w", str(self.base_dir)], user=user.uid, group=user.gid, extra_groups=[], check=False
        )
        if probe.returncode != 0:
            raise DevStackError(
                f"PostgreSQL runs as the system user {user.name!r}, who cannot reach {self.base_dir}; "
                "allow it to traverse the parent directories (chmod o+x) or pick a state dir "
                "it can reach (--state-dir or TORNADO_STATE_DIR)"
            )

    def _write_settings(self) -> None:
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        socket_dirs = str(self.socket_dir) if len(str(socket)) <= _MAX_SOCKET_PATH else ""
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "'" + socket_dirs.replace("'", "''") + "'",
            "max_connections": "300",
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "shared_buffers": "128MB",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        path = self.data_dir / "tornado.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        user = self._user()
        if user is not None:
            os.chown(path, user.uid, user.gid)

    def _as_server(self, argv: list[str], *, what: str) -> None:
        user = self._user()
        _run(
            argv,
            what=what,
            log=self.log_file,
            cwd=self.base_dir,
            user=user,
        )


def _run(
    argv: list[str],
    *,
    what: str,
    log: Path | None = None,
    cwd: Path | None = None,
    user: OsUser | None = None,
) -> None:
    """Run a program to completion; raise a DevStackError with its output on failure."""
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            start_new_session=True,
            check=False,
            timeout=120,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevStackError(f"could not {what}: {exc}") from exc
    if result.returncode != 0:
        details = (result.stderr or result.stdout).strip()
        log_tail = tail(log) if log else ""
        raise DevStackError(
            f"could not {what} ({argv[0]} exited {result.returncode}): {details}"
            + (f"\n--- {log} ---\n{log_tail}" if log_tail else "")
        )
