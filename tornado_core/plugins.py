"""The doors: entry-point groups through which installed packages add to Tornado.

A package declares, in its ``setup.cfg`` or ``pyproject.toml``::

    [options.entry_points]
    tornado.tasks =
        nfe = acme_nfe.handlers            # a module whose TaskSpec attributes are tasks
    tornado.api =
        nfe = acme_nfe.api:endpoints       # a callable (ApiContext) -> ApiExtension
    tornado.commands =
        nfe = acme_nfe.cli:nfe             # a click command or group: ``tornado nfe ...``
    tornado.devstack =
        sefaz = acme_nfe.devstack:emulator # a callable (CompanionContext) -> Companion

Nothing is imported until it is used; a plugin that fails to load raises :class:`PluginError`
naming the plugin and its package. What a plugin may use is in :mod:`tornado_core.extend`;
docs/architecture.md describes the doors.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from tornado_core.errors import TornadoError

#: Modules whose :class:`~tornado_core.task.TaskSpec` attributes are tasks.
TASKS_GROUP = "tornado.tasks"
#: Callables ``(ApiContext) -> ApiExtension``: HTTP routes with their OpenAPI paths and schemas.
API_GROUP = "tornado.api"
#: Click commands (usually groups), each added to ``tornado`` under its entry-point name.
COMMANDS_GROUP = "tornado.commands"
#: Callables ``(CompanionContext) -> Companion``: services the local stack runs for a package
#: (:mod:`tornado_core.devstack.companions`), e.g. the SEFAZ emulator.
DEVSTACK_GROUP = "tornado.devstack"


class PluginError(TornadoError):
    """An installed plugin could not be loaded or used; the message names it and its package."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of a door, not loaded yet.

    Attributes:
        group: The door (:data:`TASKS_GROUP`, :data:`API_GROUP` or :data:`COMMANDS_GROUP`).
        name: The entry point's name (for commands, the command's name).
        target: What it points at, ``module`` or ``module:attribute``.
        package: The distribution that declares it, with its version (``""`` if unknown).
    """

    group: str
    name: str
    target: str
    package: str
    entry_point: EntryPoint

    def describe(self) -> str:
        """``'name' (target, from package 1.0)``: how messages name the plugin."""
        origin = f", from {self.package}" if self.package else ""
        return f"{self.group} plugin {self.name!r} ({self.target}{origin})"

    def load(self) -> Any:
        """Import what the entry point names.

        Raises:
            PluginError: The import failed; the message names the plugin and the cause.
        """
        try:
            return self.entry_point.load()
        except Exception as exc:
            raise self.failure(exc) from exc

    def failure(self, exc: BaseException) -> PluginError:
        """A :class:`PluginError` saying that this plugin failed with ``exc``."""
        return PluginError(f"the {self.describe()} failed: {type(exc).__name__}: {exc}")


def discover(group: str) -> list[Plugin]:
    """The installed plugins of ``group``, sorted by name; nothing is imported.

    When two packages declare the same name, the first found wins (as Python's own
    import order would pick it).
    """
    found: dict[str, Plugin] = {}
    for point in entry_points(group=group):
        dist = point.dist
        package = f"{dist.name} {dist.version}" if dist is not None else ""
        found.setdefault(point.name, Plugin(group, point.name, point.value, package, point))
    return [found[name] for name in sorted(found)]
