"""Declaring a task: ``@task(name=..., payload=Model, ...)`` on a handler function."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from tornado_core.errors import PayloadInvalid
from tornado_core.jsontext import orjson_text
from tornado_core.key_limits import KeyLimit, unknown_fields
from tornado_core.periodic import Periodic
from tornado_core.retry import RetryPolicy
from tornado_core.unique import UniqueJobs

if TYPE_CHECKING:
    from tornado_core.task_context import TaskContext

Handler = Callable[["TaskContext", Any], Any]


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A registered task: its contract, policies and handler.

    Attributes:
        name: Dotted task name, ``"<package>.<action>"``.
        version: The task's version (from its package's ``__version__``).
        payload_model: Pydantic model of the payload; its JSON Schema is the contract.
        handler: ``handler(ctx, payload) -> result`` (result must be JSON-serialisable).
        retry: Retry policy (attempts and backoff).
        timeout: Seconds a single attempt may run.
        visibility_timeout: Seconds a received message stays hidden between heartbeats.
        max_concurrency: Jobs of this task running at once across all workers
            (``None`` means no cap).
        internal: Submitted only by Tornado's own endpoints (e.g. ``ponto.record`` by
            ``POST /v1/punches``), never through ``POST /v1/jobs``.
        description: One line for the API docs.
        unique: At most one job in flight per value of these payload fields (see
            :class:`~tornado_core.unique.UniqueJobs`).
        limits: Concurrency caps and rate limits per tenant or payload fields (see
            :mod:`tornado_core.key_limits`).
        schedules: Periodic schedules installed for every tenant (see
            :class:`~tornado_core.periodic.Periodic`).
        fair: Its queue takes turns between tenants instead of handing out the oldest job first.
    """

    name: str
    version: str
    payload_model: type[BaseModel]
    handler: Handler = field(repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 900.0
    visibility_timeout: float = 60.0
    max_concurrency: int | None = None
    description: str = ""
    internal: bool = False
    unique: UniqueJobs | None = None
    limits: tuple[KeyLimit, ...] = ()
    schedules: tuple[Periodic, ...] = ()
    fair: bool = False

    @property
    def lease_seconds(self) -> float:
        """How long a claim (and each heartbeat's extension of it) holds the job in the job store.

        A moment shorter than the visibility timeout (a tenth of it, at most a second), so that
        when a worker dies its job's lease has run out by the time its message reappears: the
        next worker claims the job at the first redelivery instead of finding it busy and
        waiting out a second timeout.
        """
        return self.visibility_timeout - min(1.0, self.visibility_timeout / 10)

    def __call__(self, ctx: TaskContext, payload: Any) -> Any:
        """Call the handler directly (handy in a task's own unit tests)."""
        return self.handler(ctx, payload)

    def parse_payload(self, data: Any) -> BaseModel:
        """Validate ``data`` (decoded JSON) against the payload model, as JSON and strictly.

        Strict JSON validation accepts exactly what the payload's JSON Schema (the OpenAPI
        document, the stored contract) allows: no ``"5"`` for an integer, no number for a
        date-time; ISO strings for dates, UUIDs and enums' values as JSON spells them.

        A payload model may also carry the rules its JSON Schema cannot say (totals that must add
        up, check digits): a method ``payload_problems(self) -> list[dict[str, str]]`` returning
        one ``{"field", "message"}`` per broken rule. They are checked here too, so the API
        answers 422 and the job is never queued.

        Raises:
            PayloadInvalid: With one field-level message per problem.
        """
        try:
            payload = self.payload_model.model_validate_json(_json_text(data), strict=True)
        except ValueError as exc:
            if not isinstance(exc, ValidationError):  # not JSON at all (a NaN, an object key...)
                raise PayloadInvalid([{"field": "(payload)", "message": f"not JSON data: {exc}"}]) from None
            raise PayloadInvalid(
                [
                    {"field": ".".join(str(p) for p in err["loc"]) or "(payload)", "message": err["msg"]}
                    for err in exc.errors()
                ]
            ) from None
        # Looked up on the class: a missing attribute on a pydantic instance costs an exception.
        problems = payload.payload_problems() if _has_rules(self.payload_model) else []  # type: ignore[attr-defined]
        if problems:
            raise PayloadInvalid(problems)
        return payload

    def payload_texts(self, payloads: Sequence[Any]) -> list[str] | None:
        """Each payload's JSON text (as :func:`~tornado_core.jsontext.compact` writes it) if
        :meth:`parse_payload` would accept every one of ``payloads``, checked in one call.

        ``None`` when one is invalid, and also when that cannot be told this way (rules beyond the
        schema, a ``null`` or a number orjson does not write): the caller then parses each
        payload, which says why.
        """
        if _has_rules(self.payload_model):
            return None
        texts = []
        for payload in payloads:
            text = _orjson_text(payload)
            if text is None:
                return None
            texts.append(text)
        try:
            _list_of(self.payload_model).validate_json(b"[" + b",".join(texts) + b"]", strict=True)
        except ValueError:
            return None
        return [text.decode() for text in texts]

    def json_schema(self) -> dict[str, Any]:
        """The payload's JSON Schema."""
        return self.payload_model.model_json_schema()


@functools.cache
def _has_rules(model: type[BaseModel]) -> bool:
    """Whether ``model`` declares ``payload_problems`` (see :meth:`TaskSpec.parse_payload`)."""
    return callable(getattr(model, "payload_problems", None))


@functools.lru_cache(maxsize=512)
def _list_of(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """A validator of a list of ``model`` (built once per model: building one costs milliseconds)."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _json_text(data: Any) -> bytes | str:
    """``data`` as JSON text for the validator; a NaN or an infinity raises ``ValueError``.

    orjson first (several times faster); it writes NaN as ``null`` and refuses integers beyond 64
    bits, so a text holding ``null`` (or refused) is made again by :mod:`json`, which says why.
    """
    text = _orjson_text(data)
    if text is not None:
        return text
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


def _orjson_text(data: Any) -> bytes | None:
    """``data`` as orjson writes it, or ``None`` when that text may not say the same (a ``null``,
    which may stand for a NaN, or a value orjson refuses)."""
    text = orjson_text(data)
    return None if text is None or b"null" in text else text


def task(
    *,
    name: str,
    payload: type[BaseModel],
    version: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float = 900.0,
    visibility_timeout: float = 60.0,
    max_concurrency: int | None = None,
    internal: bool = False,
    unique: UniqueJobs | None = None,
    limits: Sequence[KeyLimit] = (),
    schedules: Sequence[Periodic] = (),
    fair: bool = False,
) -> Callable[[Handler], TaskSpec]:
    """Declare a task.

    Example::

        class Echo(BaseModel):
            message: str

        @task(name="demo.echo", payload=Echo)
        def echo(ctx: TaskContext, payload: Echo) -> dict[str, str]:
            return {"message": payload.message}

    Args:
        name: Dotted name, unique across the deployment.
        payload: Pydantic model of the payload.
        version: Overrides the version read from the handler's package ``__version__``.
        retry: Retry policy; defaults to 5 attempts with exponential backoff.
        timeout: Seconds one attempt may run before it counts as failed.
        visibility_timeout: Seconds between heartbeats keeping a message hidden.
        max_concurrency: Global cap on simultaneous jobs of this task.
        internal: Refuse submissions through ``POST /v1/jobs``; only Tornado's own
            endpoints (which validate more than the payload schema) may queue it.
        unique: One job in flight per tenant and value of these payload fields; a second
            submission gets the first job back (``UniqueJobs(fields=("cnpj", "period"))``).
        limits: Per-key caps across every worker: ``ConcurrencyLimit(4)`` (4 at once per
            tenant), ``RateLimit(5, per=("cnpj", "uf"))`` (5 per second per CNPJ and UF).
        schedules: Periodic schedules of this task for every tenant
            (``Periodic("nightly", cron="0 2 * * *", timezone="America/Sao_Paulo")``).
        fair: Fair dispatch: workers take the jobs of the tenants waiting in turn, so one
            tenant's burst does not hold back the others' jobs (PostgreSQL queue; on SQS the
            jobs carry their tenant as ``MessageGroupId``, which SQS fair queues use).

    Returns:
        A decorator turning the handler into a :class:`TaskSpec`.
    """
    _check_name(name)
    unknown = sorted(set(unique.fields) - set(payload.model_fields)) if unique else []
    if unknown:
        raise ValueError(f"task {name}: unique fields {unknown} are not fields of {payload.__name__}")
    strangers = unknown_fields(limits, set(payload.model_fields))
    if strangers:
        raise ValueError(f"task {name}: limit fields {strangers} are not fields of {payload.__name__}")

    def decorate(handler: Handler) -> TaskSpec:
        return TaskSpec(
            name=name,
            version=version or _package_version(handler),
            payload_model=payload,
            handler=handler,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            visibility_timeout=visibility_timeout,
            max_concurrency=max_concurrency,
            internal=internal,
            unique=unique,
            limits=tuple(limits),
            schedules=tuple(schedules),
            fair=fair,
            description=(handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else "",
        )

    return decorate


def _check_name(name: str) -> None:
    parts = name.split(".")
    if len(parts) < 2 or not all(p.isidentifier() and p.islower() for p in parts):
        raise ValueError(f"task name {name!r} must be dotted lower-case identifiers, like 'nfe.emit'")


def _package_version(handler: Handler) -> str:
    module_name = getattr(handler, "__module__", "")
    parts = module_name.split(".")
    for depth in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:depth]))
        version = getattr(module, "__version__", None)
        if isinstance(version, str):
            return version
    raise ValueError(
        f"cannot tell the version of {module_name}: set __version__ in its package or pass version="
    )
