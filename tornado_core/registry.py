"""Task registry, filled explicitly or from the ``tornado.tasks`` entry points."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from types import ModuleType

from tornado_core.errors import TaskNotFound, VersionNotFound
from tornado_core.task import TaskSpec

ENTRY_POINT_GROUP = "tornado.tasks"


class TaskRegistry:
    """The tasks a process knows, by name and version."""

    def __init__(self, specs: Iterable[TaskSpec] = ()) -> None:
        self._specs: dict[tuple[str, str], TaskSpec] = {}
        self._sorted: dict[str, list[TaskSpec]] = {}  # versions by name, oldest first (cache)
        #: Counts registrations: caches of answers derived from the registry compare it.
        self.generation = 0
        for spec in specs:
            self.register(spec)

    @classmethod
    def from_entry_points(cls, group: str = ENTRY_POINT_GROUP) -> TaskRegistry:
        """Load every module named by an entry point of ``group``.

        Each entry point names a module (or object); every :class:`TaskSpec`
        among its attributes is registered.
        """
        registry = cls()
        for point in entry_points(group=group):
            registry.register_module(point.load())
        return registry

    def register_module(self, module: ModuleType | object) -> None:
        """Register every :class:`TaskSpec` found as an attribute of ``module``."""
        if isinstance(module, str):
            module = importlib.import_module(module)
        for value in vars(module).values():
            if isinstance(value, TaskSpec):
                self.register(value)

    def register(self, spec: TaskSpec) -> None:
        """Add a task version; the same object twice is fine, a different one is an error."""
        key = (spec.name, spec.version)
        existing = self._specs.get(key)
        if existing is not None and existing is not spec:
            raise ValueError(f"task {spec.name} {spec.version} is registered twice")
        self._specs[key] = spec
        self._sorted.pop(spec.name, None)
        self.generation += 1

    def get(self, name: str, version: str | None = None) -> TaskSpec:
        """A task by name; the newest registered version unless ``version`` is given.

        Raises:
            TaskNotFound: No task of that name.
            VersionNotFound: The name exists, but not that version.
        """
        if version is not None and (spec := self._specs.get((name, version))) is not None:
            return spec
        versions = self.versions(name)
        if not versions:
            raise TaskNotFound(name)
        if version is None:
            return versions[-1]
        for spec in versions:
            if spec.version == version:
                return spec
        raise VersionNotFound(name, version)

    def versions(self, name: str) -> list[TaskSpec]:
        """Every registered version of ``name``, oldest first."""
        return list(self._versions(name))

    def knows(self, name: str) -> bool:
        """Whether some version of ``name`` is registered."""
        return bool(self._versions(name))

    def is_internal(self, name: str) -> bool:
        """Whether any registered version of ``name`` is internal (see :attr:`TaskSpec.internal`)."""
        return any(spec.internal for spec in self._versions(name))

    def _versions(self, name: str) -> list[TaskSpec]:
        """The cached, sorted versions of ``name`` (not to be changed by the caller)."""
        cached = self._sorted.get(name)
        if cached is None:
            found = [s for (n, _), s in self._specs.items() if n == name]
            cached = self._sorted[name] = sorted(found, key=lambda s: version_sort_key(s.version))
        return cached

    def names(self) -> list[str]:
        """Task names, sorted."""
        return sorted({n for n, _ in self._specs})

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.name, version_sort_key(s.version))))


@functools.lru_cache(maxsize=4096)
def version_sort_key(version: str) -> tuple[tuple[int, str], ...]:
    """Sort key of a version string: ``1.10`` after ``1.9``, numbers before words."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.replace("-", ".").split("."))
