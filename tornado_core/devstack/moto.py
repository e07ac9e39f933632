"""The local SQS + S3 endpoint: moto's HTTP server as a detached daemon."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tornado_core.devstack.errors import DevStackError, PortTaken
from tornado_core.local_machine import (
    is_alive,
    port_open,
    spawn_detached,
    tail,
    terminate,
    wait_until,
)

#: Seconds moto may take to import and bind its port.
START_TIMEOUT = 60.0
#: Seconds a killed server may take to release its port.
PORT_RELEASE_TIMEOUT = 5.0


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1:``port``, logging to ``log_file``.

    Args:
        port: TCP port on 127.0.0.1.
        log_file: Where the server's output goes.
    """

    def __init__(self, port: int, log_file: Path) -> None:
        self.port = port
        self.log_file = log_file

    @property
    def url(self) -> str:
        """The endpoint URL for boto3 clients."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def marker(self) -> str:
        """Text in the server's command line that identifies it (and its port)."""
        return f"moto.server -H 127.0.0.1 -p {self.port} "  # NUL-joined argv ends in a space

    def running(self, pid: int | None) -> bool:
        """Whether ``pid`` is this server and it accepts connections."""
        return is_alive(pid, marker=self.marker) and port_open(self.port)

    def start(self) -> int:
        """Start the server and wait until it accepts connections.

        Returns:
            The server's pid.

        Raises:
            DevStackError: The port is taken or the server did not come up.
        """
        if not wait_until(lambda: not port_open(self.port), timeout=PORT_RELEASE_TIMEOUT):
            raise PortTaken(self.port, "the endpoint")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOTO_")}
        env.setdefault("AWS_ACCESS_KEY_ID", "test")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        pid = spawn_detached(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            log=self.log_file,
            env=env,
            cwd=self.log_file.parent,
        )
        up = wait_until(
            lambda: port_open(self.port) or not is_alive(pid, marker=self.marker),
            timeout=START_TIMEOUT,
            interval=0.1,
        )
        if not (up and self.running(pid)):
            terminate(pid, marker=self.marker)
            if port_open(self.port):  # taken between the check and the bind
                raise PortTaken(self.port, "the endpoint")
            raise DevStackError(
                f"the SQS/S3 endpoint (moto) did not start on port {self.port}; "
                f"is moto[server] installed (`pip install 'moto[server]'`)?\n"
                f"--- {self.log_file} ---\n{tail(self.log_file)}"
            )
        return pid

    def stop(self, pid: int | None) -> None:
        """Stop the server if ``pid`` is it."""
        terminate(pid, marker=self.marker, grace=5.0)
