"""OpenTelemetry traces of the API and workers: one tracer provider per process, exported by OTLP/HTTP.

The composition root builds a :class:`Tracing` only when an OTLP endpoint is configured
(:func:`tornado_core.bootstrap.build_tracing`) and hands it over in
:attr:`Services.tracing <tornado_core.services.Services.tracing>`; with none, nothing here is even
imported and the hot paths pay one ``is None`` check. No global tracer provider is installed.

A trace follows a job (docs/observability.md): the API's request span (``SERVER``, continuing a
W3C ``traceparent`` header when the caller sends one), its ``send <task>`` span (``PRODUCER``),
whose context travels in the envelope's ``traceparent``, the worker's ``process <task>`` span
(``CONSUMER``) and, under it, one ``CLIENT`` span per call the handler makes to S3 or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.context import Context, attach
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tornado_core.message import Envelope
from tornado_core.observability.tracing_ports import (
    TracedDatabase,
    TracedObjectStore,
    ended_span,
    record_error,
)
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.objects import ObjectStorePort

_Outcome = TypeVar("_Outcome", bound=str)
_TRACEPARENT = "traceparent"
#: The instrumentation scope of every span Tornado makes.
SCOPE = "tornado_core"


class Tracing:
    """The traces of one process: its own tracer provider and exporter, nothing global.

    Args:
        exporter: Where ended spans go.
        service_name: ``service.name`` of the spans.
        batch: Export in the background, in batches (``BatchSpanProcessor``); ``False`` exports each
            span as it ends (tests).
    """

    def __init__(self, exporter: SpanExporter, *, service_name: str = "tornado", batch: bool = True) -> None:
        self._provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer(SCOPE)
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def otlp(cls, endpoint: str, *, service_name: str = "tornado") -> Tracing:
        """Spans posted in batches to an OTLP/HTTP collector (protobuf).

        Args:
            endpoint: The full traces URL (``http://collector:4318/v1/traces``).
            service_name: ``service.name`` of the spans.
        """
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(OTLPSpanExporter(endpoint=endpoint), service_name=service_name)

    @property
    def tracer(self) -> Tracer:
        """This process's tracer (for spans of its own beyond the ones Tornado makes)."""
        return self._tracer

    def flush(self, timeout: float = 10.0) -> bool:
        """Export the spans ended so far; whether it finished within ``timeout`` seconds."""
        return self._provider.force_flush(int(timeout * 1000))

    def close(self) -> None:
        """Export what is left and stop the exporter (graceful stop of the API and workers)."""
        self._provider.shutdown()

    def traceparent(self, span: Span | None = None) -> str | None:
        """The W3C ``traceparent`` of ``span``, or of the current span; ``None`` when there is none."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, trace.set_span_in_context(span) if span is not None else None)
        return carrier.get(_TRACEPARENT)

    def context_of(self, traceparent: object) -> Context:
        """The context a ``traceparent`` names (empty, so a new trace, when it is missing or malformed)."""
        if not isinstance(traceparent, str) or not traceparent:
            return Context()
        return self._propagator.extract({_TRACEPARENT: traceparent})

    def start_request(self, method: str, path: str, headers: Mapping[str, str]) -> RequestSpan:
        """The server span of one HTTP request, continuing the caller's ``traceparent`` header if any.

        It is not current yet: :meth:`RequestSpan.activate` makes it so in the request's own task.
        """
        span = self._tracer.start_span(
            method, context=self._propagator.extract(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )  # fmt: skip
        return RequestSpan(span, method)

    @contextmanager
    def enqueue(self, tenant: str, task: str) -> Iterator[SendSpan]:
        """The producer span of one job being queued, a child of the current (request) span.

        Its :attr:`SendSpan.traceparent` goes into the job's envelope; an exception ends it in error.
        """
        attributes: dict[str, str | int] = {"messaging.system": "tornado", "messaging.operation.type": "send"}
        attributes.update({"tornado.task": task, "tornado.tenant": tenant})
        with ended_span(
            self._tracer, f"send {task}", kind=SpanKind.PRODUCER, parent=None, attributes=attributes
        ) as span:
            yield SendSpan(span, self.traceparent(span))

    @contextmanager
    def job(self, envelope: Envelope, *, attempt: int, queue: str) -> Iterator[JobTrace]:
        """The consumer span of one run of a job, parented by its envelope's ``traceparent``.

        The span is current in this thread while the block runs (child jobs carry its context).
        """
        attributes: dict[str, str | int] = {
            "messaging.system": "tornado", "messaging.operation.type": "process",
            "messaging.destination.name": queue, "tornado.job_id": str(envelope.job_id),
            "tornado.task": str(envelope.task), "tornado.version": str(envelope.version),
            "tornado.tenant": str(envelope.tenant), "tornado.attempt": attempt,
        }  # fmt: skip
        with self._tracer.start_as_current_span(
            f"process {envelope.task}", context=self.context_of(envelope.traceparent),
            kind=SpanKind.CONSUMER, attributes=attributes, record_exception=False,
        ) as span:  # fmt: skip
            yield JobTrace(span, self._tracer)


def span_ids(span: Span) -> tuple[str, str]:
    """``(trace_id, span_id)`` of a span in hex, as logs and trace viewers show them."""
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class RequestSpan:
    """The server span of one HTTP request, ended with its status.

    Args:
        span: The started span.
        method: The request's method (the span is renamed ``METHOD route`` at the end).
    """

    __slots__ = ("_method", "span")

    def __init__(self, span: Span, method: str) -> None:
        self.span, self._method = span, method

    def activate(self, tenant: str) -> tuple[str, str]:
        """Tag the caller's tenant and make the span current in this (request's) task.

        Returns:
            The span's ``(trace_id, span_id)``, for the request's log lines.
        """
        self.span.set_attribute("tornado.tenant", tenant)
        attach(trace.set_span_in_context(self.span))  # the task ends with the request: no detach
        return span_ids(self.span)

    def end(self, status: int, route: str | None) -> None:
        """End the span with the response's status; ``route`` is the path template it matched."""
        if route is not None:
            self.span.update_name(f"{self._method} {route}")
            self.span.set_attribute("http.route", route)
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


class SendSpan:
    """The producer span of one job being queued.

    Attributes:
        traceparent: What the job's envelope carries.
    """

    __slots__ = ("_span", "traceparent")

    def __init__(self, span: Span, traceparent: str | None) -> None:
        self._span, self.traceparent = span, traceparent

    def queued(self, receipt: Mapping[str, object]) -> None:
        """Tag the span with the job's id, version and status from the API's receipt."""
        for field, attribute in (
            ("id", "tornado.job_id"),
            ("version", "tornado.version"),
            ("status", "tornado.status"),
        ):
            if field in receipt:
                self._span.set_attribute(attribute, str(receipt[field]))


class JobTrace:
    """The span of one run of a job: its outcome, its error, and the handler's traced ports.

    Args:
        span: The job's (current) span.
        tracer: Makes the spans of the handler's calls.
    """

    def __init__(self, span: Span, tracer: Tracer) -> None:
        self._span, self._tracer = span, tracer
        self._context = trace.set_span_in_context(span)
        self.trace_id, self.span_id = span_ids(span)

    def ports(
        self, objects: ObjectStorePort, rds: DatabasePort, redshift: DatabasePort | None
    ) -> tuple[ObjectStorePort, DatabasePort, DatabasePort | None]:
        """The handler's object store and databases, each call a span under the job's."""
        tracer, parent = self._tracer, self._context
        return (
            TracedObjectStore(objects, tracer, parent),
            TracedDatabase(rds, tracer, parent, "rds"),
            TracedDatabase(redshift, tracer, parent, "redshift") if redshift is not None else None,
        )

    def failed(self, exc: BaseException) -> None:
        """Record the handler's exception on the span and mark it in error."""
        record_error(self._span, exc)

    def ended(self, outcome: _Outcome) -> _Outcome:
        """Tag the run's outcome (``succeeded``, ``retrying``, ``dead``...); returns it."""
        self._span.set_attribute("tornado.outcome", str(outcome))
        return outcome
