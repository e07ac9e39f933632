"""Task versions known by their contract alone (no code): payload schema and queue settings.

With container runtimes a version's code lives only in its image, yet the API
must validate and queue its jobs. ``release deploy`` therefore registers each
version's :class:`TaskVersion` (JSON Schema, retry and visibility settings) in
the release store; the API validates payloads of versions it has no code for
against that schema, with the same field-level errors as the pydantic path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tornado_core.errors import PayloadInvalid, TaskNotFound
from tornado_core.naming import dead_letter_name, queue_name
from tornado_core.ports.queue import QueueSpec
from tornado_core.ports.runtime import Deployment
from tornado_core.registry import TaskRegistry, _version_key
from tornado_core.task import TaskSpec


@dataclass(frozen=True, kw_only=True)
class TaskVersion:
    """What the API needs to accept jobs of a task version it has no code for.

    Attributes:
        task: Task name.
        version: Task version.
        payload_schema: JSON Schema of the payload (draft 2020-12, as pydantic emits it).
        max_attempts: Attempts before the dead-letter queue (the queue's redrive count).
        visibility_timeout: Seconds a received message stays hidden between heartbeats.
        timeout: Seconds one attempt may run.
        description: One line for people.
    """

    task: str
    version: str
    payload_schema: dict[str, Any] = field(repr=False)
    max_attempts: int
    visibility_timeout: float
    timeout: float
    description: str = ""

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> TaskVersion:
        """The contract of a task whose code is at hand."""
        return cls(
            task=spec.name,
            version=spec.version,
            payload_schema=spec.json_schema(),
            max_attempts=spec.retry.max_attempts,
            visibility_timeout=spec.visibility_timeout,
            timeout=spec.timeout,
            description=spec.description,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``tornado release describe`` prints)."""
        return {
            "task": self.task,
            "version": self.version,
            "payload_schema": self.payload_schema,
            "max_attempts": self.max_attempts,
            "visibility_timeout": self.visibility_timeout,
            "timeout": self.timeout,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> TaskVersion:
        """Parse :meth:`to_json` output (a dict or its JSON text).

        Raises:
            ValueError: Not a task version description.
        """
        raw = json.loads(data) if isinstance(data, str) else data
        try:
            return cls(
                task=str(raw["task"]),
                version=str(raw["version"]),
                payload_schema=dict(raw["payload_schema"]),
                max_attempts=int(raw["max_attempts"]),
                visibility_timeout=float(raw["visibility_timeout"]),
                timeout=float(raw["timeout"]),
                description=str(raw.get("description") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a task version description: {exc!r}") from exc

    def queue_spec(self, prefix: str) -> QueueSpec:
        """The version's queue and DLQ, as :func:`tornado_core.naming.queue_spec` builds them."""
        name = queue_name(prefix, self.task, self.version)
        return QueueSpec(
            name=name,
            dead_letter_name=dead_letter_name(name),
            max_receive_count=self.max_attempts,
            visibility_timeout=self.visibility_timeout,
        )

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return Draft202012Validator(self.payload_schema)

    def validate(self, payload: Any) -> None:
        """Check ``payload`` against the schema.

        Raises:
            PayloadInvalid: One ``{"field", "message"}`` per problem, fields named
                like pydantic's (``x.y``, ``items.0``; the web layer adds ``payload.``).
        """
        errors = sorted(self._validator.iter_errors(payload), key=lambda e: list(map(str, e.path)))
        problems: list[dict[str, str]] = []
        for error in errors:  # a ``required`` error per missing name repeats the others
            problems.extend(p for p in _problems(error) if p not in problems)
        if problems:
            raise PayloadInvalid(problems)


def _problems(error: ValidationError) -> list[dict[str, str]]:
    path = [str(part) for part in error.absolute_path]
    required, schema = error.validator_value, error.schema
    if error.validator == "required" and isinstance(error.instance, dict) and isinstance(required, list):
        missing = [name for name in required if name not in error.instance]
        return [{"field": ".".join([*path, name]), "message": "Field required"} for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
        extra = [name for name in error.instance if name not in allowed]
        return [
            {"field": ".".join([*path, name]), "message": "Extra inputs are not permitted"} for name in extra
        ]
    return [{"field": ".".join(path) or "(payload)", "message": error.message}]


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


def newest_of(versions: set[str]) -> str | None:
    """The newest of ``versions`` by version order (``1.10`` after ``1.9``); ``None`` if empty."""
    return max(versions, key=_version_key) if versions else None


#: Exit code of ``tornado release describe`` when the code at hand lacks the task version.
DESCRIBE_NOT_FOUND = 3


def describe_args(task: str, version: str) -> list[str]:
    """Arguments after ``tornado`` that print a version's contract as JSON (:meth:`TaskVersion.to_json`).

    Run them where the version's code is: ``python -m cli ...`` with its python
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
