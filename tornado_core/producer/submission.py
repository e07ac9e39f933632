"""Turning a request ``{task, tenant, payload}`` into an envelope ready for its queue.

Validation, version choice, job id and claim check happen here, the same for the
HTTP API, the Python client and the CLI. Sending is the caller's business (the
API micro-batches sends; see :mod:`tornado_core.producer.batching`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from tornado_core.errors import PayloadInvalid, TaskNotFound, TaskNotSubmittable, VersionNotFound
from tornado_core.job_ids import JobIds
from tornado_core.jsontext import compact, utf8_size
from tornado_core.message import Envelope, envelope_bodies
from tornado_core.naming import payload_key, queue_name
from tornado_core.ports.jobs import NewJob
from tornado_core.ports.objects import ObjectStorePort
from tornado_core.producer.prepared_batch import PreparedBatch, QueueGroup
from tornado_core.registry import TaskRegistry
from tornado_core.services import Services
from tornado_core.task import TaskSpec
from tornado_core.unique import UniqueJobs
from tornado_core.versions import NewestVersions, VersionCatalog

#: A job of a batch prepared together (:meth:`Submitter.prepare_many`): ``(task, payload, idempotency_key)``.
OrdinaryJob = tuple[str, dict[str, Any], str | None]
#: Picks the version of a task a new job goes to: ``(task, tenant, job_id) -> version``.
VersionResolver = Callable[[str, str, str], str]
#: The version every new job of a task by a tenant goes to, ``None`` if it depends on the job:
#: ``(task, tenant) -> version`` (a resolver's ``fixed_version``, see :class:`~tornado_core.routing.Router`).
FixedVersion = Callable[[str, str], str | None]


class PreparedJob(NamedTuple):
    """A validated job, ready to send (a named tuple: one is made for every job submitted).

    Attributes:
        envelope: What goes on the queue.
        queue: The name of the (task, version) queue to send it to.
        body: The envelope serialised: the message body.
        unique_key: The job's uniqueness key, if its task declares one (see
            :class:`~tornado_core.unique.UniqueJobs`); ``unique_window`` goes with it.
    """

    envelope: Envelope
    queue: str
    body: str
    unique_key: str | None = None
    unique_window: float = 0.0

    def __repr__(self) -> str:
        return (
            f"PreparedJob(envelope={self.envelope!r}, queue={self.queue!r}, unique_key={self.unique_key!r})"
        )

    def as_new_job(self, idempotency_key: str | None = None) -> NewJob:
        """The job-store record of this job once the queue has accepted it."""
        e = self.envelope
        # By position, in NewJob's field order: half the cost of keywords, once per job queued.
        return NewJob(e.job_id, e.tenant, e.task, e.version, e.submitted_at, idempotency_key)

    def receipt(self, status: str = "queued") -> dict[str, str]:
        """What the API answers once the job is queued (or ``scheduled``: parked until due)."""
        e = self.envelope
        return job_receipt(e.job_id, e.task, e.version, status)


def job_receipt(job_id: str, task: str, version: str, status: str = "queued") -> dict[str, str]:
    """What the API answers for a job it accepted: ``{"id", "task", "version", "status"}``."""
    return {"id": job_id, "task": task, "version": version, "status": status}


class Submitter:
    """Validates submissions and builds their envelopes.

    Args:
        registry: Known tasks.
        job_ids: Job id issuer.
        objects: Where large payloads go (claim check).
        queue_prefix: Prefix of queue names.
        claim_check_bytes: Payloads larger than this are stored in ``objects``.
        resolve_version: Routing; defaults to the newest registered version.
        catalog: Versions registered by releases, whose code this process may
            not have; their payloads are checked against the stored JSON Schema.
    """

    def __init__(
        self,
        *,
        registry: TaskRegistry,
        job_ids: JobIds,
        objects: ObjectStorePort,
        queue_prefix: str,
        claim_check_bytes: int,
        resolve_version: VersionResolver | None = None,
        catalog: VersionCatalog | None = None,
    ) -> None:
        self._registry = registry
        self._job_ids = job_ids
        self._objects = objects
        self._prefix = queue_prefix
        self._claim_check_bytes = claim_check_bytes
        self._catalog = catalog
        newest = NewestVersions(registry, catalog)
        self._resolve = resolve_version or (lambda task, _t, _id: newest(task))
        self._fixed_version: FixedVersion | None = (
            getattr(resolve_version, "fixed_version", None)
            if resolve_version is not None
            else lambda task, _tenant: newest(task)
        )
        self._queues: dict[tuple[str, str], str] = {}

    @classmethod
    def for_services(
        cls,
        services: Services,
        *,
        resolve_version: VersionResolver | None = None,
        catalog: VersionCatalog | None = None,
    ) -> Submitter:
        """A submitter on the process's services (registry, job ids, objects, settings)."""
        return cls(
            registry=services.registry,
            job_ids=services.job_ids,
            objects=services.objects,
            queue_prefix=services.settings.queue_prefix,
            claim_check_bytes=services.settings.claim_check_bytes,
            resolve_version=resolve_version,
            catalog=catalog,
        )

    def prepare(
        self,
        *,
        task: str,
        tenant: str,
        payload: Any,
        idempotency_key: str | None = None,
        version: str | None = None,
        internal_ok: bool = False,
        traceparent: str | None = None,
    ) -> PreparedJob:
        """Validate and build the envelope of one job.

        Args:
            task: Task name.
            tenant: Submitting tenant.
            payload: JSON payload (a dict).
            idempotency_key: Same key, same job id.
            version: Pin a version instead of routing (smoke jobs, tests).
            internal_ok: Allow internal tasks (Tornado's own endpoints only).
            traceparent: The W3C trace context of the span queueing the job, carried in the
                envelope to parent the worker's span (``None``: not traced).

        Raises:
            TaskNotFound: Unknown task.
            TaskNotSubmittable: An internal task without ``internal_ok``.
            VersionNotFound: A pinned version that is not registered.
            PayloadInvalid: The payload violates the task's schema.
        """
        self._admit(task, internal_ok)
        job_id = (
            self._keyed_id(tenant, task, idempotency_key) if idempotency_key else self._job_ids.new(tenant)
        )
        chosen = version or self._resolve(task, tenant, job_id)
        unique = self._validate(task, chosen, payload)
        envelope = Envelope(
            job_id=job_id,
            task=task,
            version=chosen,
            tenant=tenant,
            payload=payload,
            submitted_at=time.time(),
            traceparent=traceparent,
        )
        body = envelope.to_json()
        if utf8_size(body) > self._claim_check_bytes:  # else the payload alone is not either
            envelope = self._claim_check(envelope)
            body = envelope.to_json()
        return PreparedJob(
            envelope=envelope,
            queue=self._queue(task, chosen),
            body=body,
            unique_key=unique.key(payload) if unique else None,
            unique_window=unique.window if unique else 0.0,
        )

    def prepare_many(
        self, *, tenant: str, jobs: Sequence[OrdinaryJob], traceparent: str | None = None
    ) -> PreparedBatch | None:
        """Prepare a batch of ordinary jobs together, or answer ``None`` so each goes through :meth:`prepare`.

        The jobs come out as :meth:`prepare` would make them (the same routing, validation and
        message bodies), at a fraction of the cost: one clock read and one read of randomness for
        the ids, one validation call per task version, bodies written from one template per task
        version, no envelope object per job. Only a batch of ordinary jobs takes this path: tasks
        whose code is here, not internal, without uniqueness or payload rules beyond the schema,
        payloads that validate and need no claim check. For anything else it answers ``None``
        (having done nothing), and :meth:`prepare` gives each job its answer or its error.

        Args:
            tenant: Submitting tenant.
            jobs: ``(task, payload, idempotency_key)`` of each job, in order.
            traceparent: As for :meth:`prepare` (one for the whole batch).
        """
        fresh = iter(self._job_ids.new_many(tenant, sum(1 for _, _, key in jobs if not key)))
        gathered: dict[tuple[str, str], _Gathered] = {}
        fixed: dict[str, str | None] = {}  # each task's version if the same for all its jobs here
        for position, (task, payload, key) in enumerate(jobs):
            if task not in fixed:
                if not self._registry.knows(task):  # unknown, or its code is not here: prepare() tells
                    return None
                fixed[task] = self._fixed_version(task, tenant) if self._fixed_version is not None else None
            job_id = self._keyed_id(tenant, task, key) if key else next(fresh)
            version = fixed[task] or self._resolve(task, tenant, job_id)
            group = gathered.get((task, version))
            if group is None:
                spec = self._ordinary(task, version)
                if spec is None:
                    return None
                group = gathered[(task, version)] = _Gathered(spec)
            group.add(position, job_id, payload, key)
        now = time.time()
        groups = []
        for (task, version), group in gathered.items():
            texts = group.spec.payload_texts(group.payloads)
            if texts is None:
                return None
            bodies = envelope_bodies(
                job_ids=group.job_ids, payload_texts=texts, task=task, version=version, tenant=tenant,
                submitted_at=now, traceparent=traceparent,
            )  # fmt: skip
            if max(map(utf8_size, bodies)) > self._claim_check_bytes:
                return None
            groups.append(
                QueueGroup(
                    self._queue(task, version),
                    task,
                    version,
                    group.positions,
                    group.job_ids,
                    bodies,
                    group.keys,
                )
            )
        return PreparedBatch(tenant=tenant, submitted_at=now, size=len(jobs), groups=groups)

    def _ordinary(self, task: str, version: str) -> TaskSpec | None:
        """The spec of a task version fit for :meth:`prepare_many`, else ``None``."""
        try:
            spec = self._registry.get(task, version)
        except (TaskNotFound, VersionNotFound):
            return None
        return None if self._registry.is_internal(task) or spec.unique is not None else spec

    def _keyed_id(self, tenant: str, task: str, idempotency_key: str) -> str:
        """The job id every submission of ``idempotency_key`` for ``task`` by ``tenant`` gets."""
        return self._job_ids.for_idempotency_key(tenant, f"{task}\0{idempotency_key}")

    def _queue(self, task: str, version: str) -> str:
        name = self._queues.get((task, version))
        if name is None:
            name = self._queues[(task, version)] = queue_name(self._prefix, task, version)
        return name

    def check(self, *, task: str, tenant: str, payload: Any, internal_ok: bool = False) -> None:
        """Refuse what :meth:`prepare` would refuse, without building a job (a schedule's payload).

        Raises:
            TaskNotFound, TaskNotSubmittable, VersionNotFound, PayloadInvalid: As :meth:`prepare`.
        """
        self._admit(task, internal_ok)
        self._validate(task, self._resolve(task, tenant, ""), payload)

    def _admit(self, task: str, internal_ok: bool) -> None:
        if not self._registry.knows(task) and not (self._catalog and self._catalog.version_names(task)):
            raise TaskNotFound(task)
        if not internal_ok and self._registry.is_internal(task):
            raise TaskNotSubmittable(task)

    def _validate(self, task: str, version: str, payload: Any) -> UniqueJobs | None:
        """With the task's code (pydantic) if at hand, else with its registered JSON Schema.

        Returns:
            The version's uniqueness rule, when its code is at hand and declares one.
        """
        check: Callable[[Any], object]
        unique = None
        try:
            spec = self._registry.get(task, version)
        except (TaskNotFound, VersionNotFound):
            known = self._catalog.task_version(task, version) if self._catalog is not None else None
            if known is None:
                raise VersionNotFound(task, version) from None
            check = known.validate
        else:
            check, unique = spec.parse_payload, spec.unique
        if not isinstance(payload, dict):
            raise PayloadInvalid([{"field": "payload", "message": "must be a JSON object"}])
        check(payload)
        return unique

    def _claim_check(self, envelope: Envelope) -> Envelope:
        text = compact(envelope.payload)
        if utf8_size(text) <= self._claim_check_bytes:
            return envelope
        key = payload_key(envelope.task, envelope.job_id)
        self._objects.put(key, text.encode(), content_type="application/json")
        return Envelope(
            job_id=envelope.job_id,
            task=envelope.task,
            version=envelope.version,
            tenant=envelope.tenant,
            payload=None,
            payload_ref=key,
            submitted_at=envelope.submitted_at,
            traceparent=envelope.traceparent,
        )


class _Gathered:
    """The jobs of one task version while :meth:`Submitter.prepare_many` reads a batch."""

    __slots__ = ("job_ids", "keys", "payloads", "positions", "spec")

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.positions: list[int] = []
        self.job_ids: list[str] = []
        self.payloads: list[dict[str, Any]] = []
        self.keys: list[str | None] = []

    def add(self, position: int, job_id: str, payload: dict[str, Any], key: str | None) -> None:
        self.positions.append(position)
        self.job_ids.append(job_id)
        self.payloads.append(payload)
        self.keys.append(key)
