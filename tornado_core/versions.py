"""Task versions known by their contract alone (no code): payload schema and queue settings.

With container runtimes a version's code lives only in its image, yet the API
must validate and queue its jobs. ``release deploy`` therefore registers each
version's :class:`TaskVersion` (JSON Schema, retry and visibility settings) in
the release store; the API validates payloads of versions it has no code for
against that schema, with the same field-level errors as the pydantic path.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from tornado_core.errors import TaskNotFound
from tornado_core.ports.runtime import Deployment
from tornado_core.ports.versions import TaskVersion
from tornado_core.registry import TaskRegistry, version_sort_key
from tornado_core.task import TaskSpec


def contract_of(spec: TaskSpec) -> TaskVersion:
    """The contract of a task version whose code is at hand."""
    return TaskVersion(
        task=spec.name,
        version=spec.version,
        payload_schema=spec.json_schema(),
        max_attempts=spec.retry.max_attempts,
        visibility_timeout=spec.visibility_timeout,
        timeout=spec.timeout,
        description=spec.description,
    )


class VersionCatalog(Protocol):
    """Registered task versions, code or not (the API reads a cache of the store)."""

    def task_version(self, task: str, version: str) -> TaskVersion | None:
        """One version's contract, or ``None`` if it was never registered."""

    def version_names(self, task: str) -> list[str]:
        """Every registered version of ``task`` (any order)."""


def newest_version(registry: TaskRegistry, catalog: VersionCatalog | None, task: str) -> str:
    """The newest version of ``task`` with code here or registered in ``catalog``.

    Raises:
        TaskNotFound: Neither knows the task.
    """
    names = {spec.version for spec in registry.versions(task)}
    if catalog is not None:
        names.update(catalog.version_names(task))
    newest = newest_of(names)
    if newest is None:
        raise TaskNotFound(task)
    return newest


class NewestVersions:
    """:func:`newest_version` for tasks without a route, remembered until the versions change.

    The API asks it for every job of such a task; the answer changes only when a version is
    registered, so it is recomputed only when the catalog's list of names differs or the registry
    has registered another version since.

    Args:
        registry: The task versions with code here.
        catalog: Registered versions, code or not (``None``: the registry alone).
    """

    def __init__(self, registry: TaskRegistry, catalog: VersionCatalog | None) -> None:
        self._registry = registry
        self._catalog = catalog
        self._known: dict[str, tuple[int, list[str], str]] = {}

    def __call__(self, task: str) -> str:
        """The newest version of ``task``.

        Raises:
            TaskNotFound: Neither the registry nor the catalog knows the task.
        """
        names = self._catalog.version_names(task) if self._catalog is not None else []
        generation = self._registry.generation
        known = self._known.get(task)
        if known is not None and known[0] == generation and known[1] == names:
            return known[2]
        newest = newest_version(self._registry, self._catalog, task)
        self._known[task] = (generation, names, newest)
        return newest


def newest_of(versions: set[str]) -> str | None:
    """The newest of ``versions`` by version order (``1.10`` after ``1.9``); ``None`` if empty."""
    return max(versions, key=version_sort_key) if versions else None


#: Exit code of ``tornado release describe`` when the code at hand lacks the task version.
DESCRIBE_NOT_FOUND = 3


def describe_args(task: str, version: str) -> list[str]:
    """Arguments after ``tornado`` that print a version's contract as JSON (:meth:`TaskVersion.to_json`).

    Run them where the version's code is: ``python -m tornado_cli ...`` with its python
    path (process runtime), ``tornado ...`` in its image (docker, ecs). Exit code
    :data:`DESCRIBE_NOT_FOUND` means the code has no such task version.
    """
    return ["release", "describe", task, version]


@runtime_checkable
class VersionDescriber(Protocol):
    """A runtime that can read a version's contract from where its code lives (image, path).

    ``release deploy`` uses it when the deploying process has no code of the
    version: the process runtime runs ``tornado release describe`` with the
    deployment's python path; a container runtime runs it in the image.
    """

    def describe(self, deployment: Deployment) -> TaskVersion | None:
        """The contract of ``deployment``'s task version, or ``None`` if its code lacks it."""
