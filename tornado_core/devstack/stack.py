"""The local stack: a real PostgreSQL server and a real SQS + S3 endpoint, started once.

The ``tornado dev`` commands and the pytest fixtures both drive this class.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tornado_core.adapters.aws.clients import make_client
from tornado_core.adapters.aws.s3 import S3ObjectStore
from tornado_core.adapters.postgres.admin import DatabaseAdmin, database_name, migrate
from tornado_core.devstack.certs import TEST_SIGNER_KEY, make_test_signer_pem
from tornado_core.devstack.companions import Companions
from tornado_core.devstack.errors import DevStackError, PortTaken
from tornado_core.devstack.moto import MotoServer
from tornado_core.devstack.postgres import PostgresServer
from tornado_core.devstack.state import StackState, load_state, save_state
from tornado_core.errors import TornadoError
from tornado_core.local_machine import free_port, locked, paused, with_descendants

#: Job store and PostgreSQL queue.
JOBS_DB = "tornado"
#: The ERP's own database (RDS in production), handed to task handlers.
ERP_DB = "tornado_erp"
#: Local stand-in for Redshift.
REDSHIFT_DB = "tornado_redshift"
#: Migrated copy that :meth:`DevStack.create_database` clones.
TEMPLATE_DB = "tornado_template"
BUCKET = "tornado"
REGION = "us-east-1"
#: Ports a first ``up`` tries for each service before giving up.
PORT_ATTEMPTS = 5


@dataclass(frozen=True, kw_only=True)
class StackInfo:
    """Where the stack's services are; :meth:`env` turns it into settings."""

    database_url: str
    erp_database_url: str
    redshift_url: str
    aws_endpoint_url: str
    secret_key: str
    aws_region: str = REGION
    bucket: str = BUCKET
    state_dir: Path | None = None
    #: Settings the companion services add (``tornado.devstack`` door), e.g. the SEFAZ emulator's URL.
    companion_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """Environment variables that point Tornado (and boto3) at the stack."""
        return {**self.core_env(), **self.companion_env}

    def core_env(self) -> dict[str, str]:
        """The environment of the core services alone (database, queue, S3)."""
        return {
            "TORNADO_DATABASE_URL": self.database_url,
            "TORNADO_ERP_DATABASE_URL": self.erp_database_url,
            "TORNADO_REDSHIFT_URL": self.redshift_url,
            "TORNADO_AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "TORNADO_AWS_REGION": self.aws_region,
            "TORNADO_BUCKET": self.bucket,
            "TORNADO_SECRET_KEY": self.secret_key,
            "TORNADO_QUEUE": "postgres",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
        }


@dataclass(frozen=True, kw_only=True)
class StackStatus:
    """What runs right now."""

    state_dir: Path
    initialized: bool
    postgres_running: bool
    postgres_pid: int | None
    postgres_port: int | None
    moto_running: bool
    moto_pid: int | None
    moto_port: int | None

    @property
    def running(self) -> bool:
        """Both services run."""
        return self.postgres_running and self.moto_running


class DevStack:
    """PostgreSQL and the moto endpoint as background daemons, state in ``state_dir``.

    Every method is safe to call from several processes at once (a file lock
    serializes them). Services keep running after this process exits.

    Args:
        state_dir: Project-local folder for data, logs, sockets and the state file.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()

    def up(self) -> StackInfo:
        """Start whatever is not running (idempotent) and return where it is.

        The first call picks free ports, creates the cluster, the databases
        (migrated), and the bucket; later calls only restart dead services.

        Raises:
            DevStackError: A service could not be installed or started.
        """
        with locked(self.state_dir):
            saved = load_state(self.state_dir)
            state = saved or StackState.new()
            save_state(self.state_dir, state)
            # A first `up` picked its ports a moment ago: if another program took one since, pick
            # again (nobody knows these ports yet). Later, the ports are the stack's address.
            self._on_a_free_port(state, "postgres_port", self._up_postgres, may_move=saved is None)
            self._on_a_free_port(state, "moto_port", self._up_moto, may_move=saved is None)
            companions = self._companions(state)
            core_env = self._info(state).core_env()
            try:
                companions.up(core_env, os.environ)
            finally:
                save_state(self.state_dir, state)
            return self._info(state)

    def _on_a_free_port(
        self, state: StackState, port_field: str, start: Callable[[StackState], None], *, may_move: bool
    ) -> None:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                start(state)
                return
            except PortTaken:
                if not may_move or attempt == PORT_ATTEMPTS:
                    raise
            setattr(state, port_field, free_port())
            save_state(self.state_dir, state)

    def down(self) -> None:
        """Stop both services; data and ports are kept for the next ``up``."""
        with locked(self.state_dir):
            state = load_state(self.state_dir)
            if state is None:
                return
            self._companions(state).down(self._info(state, with_companions=False).core_env())
            self._moto(state).stop(state.moto_pid)
            state.moto_pid = None
            save_state(self.state_dir, state)
            self._postgres(state).stop()

    def status(self) -> StackStatus:
        """Which services run, with their pids and ports."""
        state = load_state(self.state_dir)
        if state is None:
            return StackStatus(
                state_dir=self.state_dir,
                initialized=False,
                postgres_running=False,
                postgres_pid=None,
                postgres_port=None,
                moto_running=False,
                moto_pid=None,
                moto_port=None,
            )
        pg_pid = self._postgres(state).pid()
        moto_running = self._moto(state).running(state.moto_pid)
        return StackStatus(
            state_dir=self.state_dir,
            initialized=self._postgres(state).initialized(),
            postgres_running=pg_pid is not None,
            postgres_pid=pg_pid,
            postgres_port=state.postgres_port,
            moto_running=moto_running,
            moto_pid=state.moto_pid if moto_running else None,
            moto_port=state.moto_port,
        )

    def info(self) -> StackInfo:
        """Where the services are (whether or not they run).

        Raises:
            DevStackError: ``up`` never ran in this state dir.
        """
        return self._info(self._require_state())

    def env(self) -> dict[str, str]:
        """The settings environment (see :meth:`StackInfo.env`)."""
        return self.info().env()

    def create_database(self, name: str | None = None) -> str:
        """A new, migrated database cloned from the template; returns its DSN.

        Args:
            name: Lowercase identifier; random (``t_...``) if omitted.
        """
        return self._admin().create(name, template=TEMPLATE_DB)

    def drop_database(self, name_or_dsn: str) -> None:
        """Drop a database made by :meth:`create_database` (by name or DSN)."""
        name = database_name(name_or_dsn) if "://" in name_or_dsn else name_or_dsn
        if name in (JOBS_DB, ERP_DB, REDSHIFT_DB, TEMPLATE_DB, "postgres"):
            raise DevStackError(f"refusing to drop the stack's own database {name!r}")
        self._admin().drop(name)

    @contextlib.contextmanager
    def stalled(self, service: str) -> Iterator[None]:
        """Freeze ``"postgres"`` (every server process) or the SQS/S3 ``"endpoint"`` for a block.

        Fault tests use it: the service keeps its port and its connections but answers nothing,
        as a server does when it hangs, until the block ends.

        Raises:
            DevStackError: The service is unknown or not running.
        """
        state = load_state(self.state_dir)
        pid = None
        if state is not None and service == "postgres":
            pid = self._postgres(state).pid()
        elif state is not None and service == "endpoint":
            pid = state.moto_pid
        if not pid:
            raise DevStackError(f"cannot stall {service!r}: it is not a running service of this stack")
        with paused(with_descendants(pid)):
            yield

    def stop_postgres(self) -> None:
        """Stop PostgreSQL only (tests use this to simulate an outage)."""
        with locked(self.state_dir):
            self._postgres(self._require_state()).stop()

    def start_postgres(self) -> None:
        """Start PostgreSQL again after :meth:`stop_postgres`."""
        with locked(self.state_dir):
            self._up_postgres(self._require_state())

    def stop_moto(self) -> None:
        """Stop the SQS/S3 endpoint only (its queues and objects are lost)."""
        with locked(self.state_dir):
            state = self._require_state()
            self._moto(state).stop(state.moto_pid)
            state.moto_pid = None
            save_state(self.state_dir, state)

    def start_moto(self) -> None:
        """Start the SQS/S3 endpoint again (with an empty bucket)."""
        with locked(self.state_dir):
            self._up_moto(self._require_state())

    def _up_postgres(self, state: StackState) -> None:
        server = self._postgres(state)
        if not server.initialized():
            state.postgres_provisioned = False
            save_state(self.state_dir, state)
            server.init()
        server.start()
        if not state.postgres_provisioned:
            self._provision_postgres(server)
            state.postgres_provisioned = True
            save_state(self.state_dir, state)
        else:  # a stack made by an older Tornado gets the migrations added since
            self._migrate(server)

    def _provision_postgres(self, server: PostgresServer) -> None:
        admin = DatabaseAdmin(server.dsn("postgres"))
        for name in (ERP_DB, REDSHIFT_DB, TEMPLATE_DB, JOBS_DB):
            admin.ensure(name)
        self._migrate(server)

    def _migrate(self, server: PostgresServer) -> None:
        for name in (TEMPLATE_DB, JOBS_DB):
            try:
                migrate(server.dsn(name))
            except TornadoError as exc:
                raise DevStackError(f"could not migrate database {name}: {exc}") from exc

    def _up_moto(self, state: StackState) -> None:
        moto = self._moto(state)
        if not moto.running(state.moto_pid):
            state.moto_pid = moto.start()
            save_state(self.state_dir, state)
        if state.moto_provisioned_pid != state.moto_pid:
            self._provision_moto(moto)
            state.moto_provisioned_pid = state.moto_pid
            save_state(self.state_dir, state)

    def _provision_moto(self, moto: MotoServer) -> None:
        client = make_client("s3", region=REGION, endpoint_url=moto.url, credentials=("test", "test"))
        store = S3ObjectStore(client, BUCKET)
        try:
            store.ensure_bucket()
        except TornadoError as exc:
            raise DevStackError(f"could not create bucket {BUCKET}: {exc}") from exc
        try:  # a test signing certificate (AFD .p7s); never overwrite one put there on purpose
            if not store.exists(TEST_SIGNER_KEY):
                store.put(TEST_SIGNER_KEY, make_test_signer_pem(), content_type="application/x-pem-file")
        except TornadoError as exc:
            raise DevStackError(f"could not store the test signing certificate: {exc}") from exc

    def _info(self, state: StackState, *, with_companions: bool = True) -> StackInfo:
        server = self._postgres(state)
        info = StackInfo(
            database_url=server.dsn(JOBS_DB),
            erp_database_url=server.dsn(ERP_DB),
            redshift_url=server.dsn(REDSHIFT_DB),
            aws_endpoint_url=self._moto(state).url,
            secret_key=state.secret_key,
            state_dir=self.state_dir,
        )
        if not with_companions:
            return info
        extra = self._companions(state).env(info.core_env())
        return dataclasses.replace(info, companion_env=extra)

    def _companions(self, state: StackState) -> Companions:
        return Companions(self.state_dir, state.companion_ports, state.companion_pids)

    def _admin(self) -> DatabaseAdmin:
        return DatabaseAdmin(self._postgres(self._require_state()).dsn("postgres"))

    def _require_state(self) -> StackState:
        state = load_state(self.state_dir)
        if state is None:
            raise DevStackError(f"no local stack in {self.state_dir}; run `tornado dev up` first")
        return state

    def _postgres(self, state: StackState) -> PostgresServer:
        return PostgresServer(self.state_dir / "postgres", state.postgres_port)

    def _moto(self, state: StackState) -> MotoServer:
        return MotoServer(state.moto_port, self.state_dir / "moto.log")
