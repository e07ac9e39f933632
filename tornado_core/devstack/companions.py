"""Companion services that task packages add to the local stack (the ``tornado.devstack`` door).

A package declares a factory::

    [options.entry_points]
    tornado.devstack =
        sefaz = acme_nfe.devstack:sefaz_emulator     # (CompanionContext) -> Companion

``tornado dev up`` (and the test fixtures) calls each factory with a port of its own and a
folder in the stack's state dir; the factory prepares what its service needs there (keys,
certificates, once) and says how to start it and which settings the stack's environment gains
(``TORNADO_NFE_SEFAZ_URL=...``). The stack starts the command as a daemon on 127.0.0.1, waits
until the port accepts connections, and stops it with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tornado_core.devstack.errors import DevStackError
from tornado_core.local_machine import (
    free_port,
    is_alive,
    port_open,
    spawn_detached,
    tail,
    terminate,
    wait_until,
)
from tornado_core.plugins import DEVSTACK_GROUP, Plugin, discover

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class CompanionContext:
    """What a factory gets.

    Attributes:
        name: The entry point's name.
        port: The TCP port on 127.0.0.1 the service must listen on (fixed at the first ``up``).
        directory: A folder of its own in the stack's state dir, kept across ``up``/``down``.
        stack_env: The settings environment of the stack's core services (database, S3...).
    """

    name: str
    port: int
    directory: Path
    stack_env: Mapping[str, str]


@dataclass(frozen=True)
class Companion:
    """How to run one companion service.

    Attributes:
        argv: The command; it must listen on ``127.0.0.1:<port>`` of its context.
        env: Settings the stack's environment gains (workers, API and tests see them).
        extra_env: Environment of the service process only, beyond the stack's.
    """

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)


CompanionFactory = Callable[[CompanionContext], Companion]


class Companions:
    """The installed companions of one stack: their ports and pids live in the stack's state.

    Args:
        state_dir: The stack's state dir (each companion gets ``companions/<name>/``).
        ports: ``name -> port`` from the stack's state; new names get a free port (saved by the caller).
        pids: ``name -> pid`` of the ones started, from the stack's state.
    """

    def __init__(self, state_dir: Path, ports: dict[str, int], pids: dict[str, int]) -> None:
        self._dir = state_dir / "companions"
        self.ports = ports
        self.pids = pids
        self._plugins: list[Plugin] = discover(DEVSTACK_GROUP)

    def env(self, stack_env: Mapping[str, str]) -> dict[str, str]:
        """The settings every companion adds to the stack's environment."""
        merged: dict[str, str] = {}
        for plugin in self._plugins:
            merged.update(self._companion(plugin, stack_env).env)
        return merged

    def up(self, stack_env: Mapping[str, str], process_env: Mapping[str, str]) -> None:
        """Start every companion that does not run (idempotent)."""
        for plugin in self._plugins:
            self._start(plugin, self._companion(plugin, stack_env), {**process_env, **stack_env})

    def _start(self, plugin: Plugin, companion: Companion, base_env: Mapping[str, str]) -> None:
        port, marker = self.ports[plugin.name], _marker(companion)
        if is_alive(self.pids.get(plugin.name), marker=marker) and port_open(port):
            return
        log = self._folder(plugin.name) / "service.log"
        env = {**base_env, **companion.env, **companion.extra_env}
        pid = spawn_detached(list(companion.argv), log=log, env=env, cwd=self._folder(plugin.name))
        self.pids[plugin.name] = pid

        def settled() -> bool:
            return port_open(port) or not is_alive(pid, marker=marker)

        if not (wait_until(settled, timeout=START_TIMEOUT, interval=0.1) and port_open(port)):
            terminate(pid, marker=marker)
            raise DevStackError(f"the {plugin.describe()} did not start on port {port}:\n{tail(log)}")

    def down(self, stack_env: Mapping[str, str]) -> None:
        """Stop every companion that runs."""
        for plugin in self._plugins:
            terminate(
                self.pids.pop(plugin.name, None), marker=_marker(self._companion(plugin, stack_env)), grace=5
            )

    def running(self) -> dict[str, bool]:
        """Which companions accept connections now."""
        return {p.name: p.name in self.pids and port_open(self.ports.get(p.name, 0)) for p in self._plugins}

    def _companion(self, plugin: Plugin, stack_env: Mapping[str, str]) -> Companion:
        port = self.ports.setdefault(plugin.name, free_port())
        factory = plugin.load()
        context = CompanionContext(plugin.name, port, self._folder(plugin.name), dict(stack_env))
        try:
            companion = factory(context)
        except Exception as exc:
            raise plugin.failure(exc) from exc
        if not isinstance(companion, Companion):
            raise plugin.failure(
                TypeError(f"its factory returned {type(companion).__name__}, not a Companion")
            )
        return companion

    def _folder(self, name: str) -> Path:
        folder = self._dir / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder


def _marker(companion: Companion) -> str:
    """Text of the service's command line that identifies it (guards against recycled pids)."""
    return " ".join(str(arg) for arg in companion.argv)
