"""Thin tracing proxies of the object store and databases a handler receives: one span per call.

They wrap ``ctx.s3``, ``ctx.rds`` and ``ctx.redshift`` only when tracing is on (the worker's
:class:`~tornado_core.observability.tracing.JobTrace` builds them). Each span's parent is the job's
span, given explicitly, so calls a handler makes from a thread of its own are still in the job's
trace. What a proxy does not trace it forwards unchanged (attributes included), so a handler sees
the port it always had.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from tornado_core.ports.database import DatabasePort
from tornado_core.ports.objects import ObjectStorePort, ObjectUpload

#: The table of a statement: the first name after FROM, INTO, UPDATE, JOIN, COPY or TABLE (or CALL).
_TARGET = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN|CALL|COPY|TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?)\s+(\"[^\"]+\"|[A-Za-z_][\w.$]*)",
    re.IGNORECASE,
)
_POSTGRESQL = "postgresql"


def record_error(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` as an event and mark the span in error."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


@contextmanager
def ended_span(
    tracer: Tracer, name: str, *, kind: SpanKind, parent: Context | None, attributes: dict[str, str | int]
) -> Iterator[Span]:
    """A span around the block, never made current: ended at its end, in error if the block raised.

    Args:
        tracer: Makes the span.
        name: Its name.
        kind: Its kind.
        parent: The context of its parent span; ``None``: the current one.
        attributes: Its attributes at the start.
    """
    span = tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
    try:
        yield span
    except GeneratorExit:  # a reader that stopped early is no error
        raise
    except BaseException as exc:
        record_error(span, exc)
        raise
    finally:
        span.end()


def statement_summary(query: object) -> tuple[str, str | None]:
    """The operation and the table of a SQL statement, for a span's name (never its values).

    Args:
        query: The statement as given to ``cursor.execute`` (text, bytes or a composed query).

    Returns:
        ``("INSERT", "demo_effects")``; the table is ``None`` when none is named.
    """
    if isinstance(query, bytes):
        query = query.decode(errors="replace")
    if not isinstance(query, str):
        return "SQL", None
    words = query.split(None, 1)
    operation = words[0].upper().strip("(;") if words else "SQL"
    found = _TARGET.search(query)
    return operation or "SQL", found.group(1).strip('"') if found else None


class TracedObjectStore:
    """An :class:`ObjectStorePort` whose calls are ``S3.<Operation>`` client spans.

    Args:
        inner: The store the calls go to.
        tracer: Makes the spans.
        parent: The context whose span parents them (the job's).
    """

    def __init__(self, inner: ObjectStorePort, tracer: Tracer, parent: Context) -> None:
        self._inner, self._tracer, self._parent = inner, tracer, parent
        self.bucket = inner.bucket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def _span(self, operation: str, **attributes: str | int) -> Iterator[Span]:
        names: dict[str, str | int] = {"rpc.system": "aws-api", "rpc.service": "S3", "rpc.method": operation}
        names["aws.s3.bucket"] = self.bucket
        names.update((f"aws.s3.{name}", value) for name, value in attributes.items())
        with ended_span(
            self._tracer, f"S3.{operation}", kind=SpanKind.CLIENT, parent=self._parent, attributes=names
        ) as span:
            yield span

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` (span ``S3.PutObject``)."""
        with self._span("PutObject", key=key, bytes=len(data)):
            self._inner.put(key, data, content_type=content_type)

    def get(self, key: str) -> bytes:
        """Read an object (span ``S3.GetObject``)."""
        with self._span("GetObject", key=key) as span:
            data = self._inner.get(key)
            span.set_attribute("aws.s3.bytes", len(data))
            return data

    def read_chunks(self, key: str, *, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
        """Read an object piece by piece (span ``S3.GetObject``, open while the pieces are read)."""
        with self._span("GetObject", key=key):
            yield from self._inner.read_chunks(key, chunk_bytes=chunk_bytes)

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists (span ``S3.HeadObject``)."""
        with self._span("HeadObject", key=key):
            return self._inner.exists(key)

    def delete(self, key: str) -> None:
        """Delete ``key`` (span ``S3.DeleteObject``)."""
        with self._span("DeleteObject", key=key):
            self._inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` (span ``S3.ListObjectsV2``)."""
        with self._span("ListObjectsV2", prefix=prefix):
            return self._inner.list(prefix)

    def download_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A presigned link (signed locally: no call, no span)."""
        return self._inner.download_url(key, expires_in=expires_in, filename=filename)

    @contextmanager
    def upload(self, key: str, *, content_type: str = "application/octet-stream") -> Iterator[ObjectUpload]:
        """Stream an object into ``key`` (span ``S3.Upload``, open for the whole block)."""
        with self._span("Upload", key=key), self._inner.upload(key, content_type=content_type) as sink:
            yield sink


class TracedDatabase:
    """A :class:`DatabasePort` whose transactions and statements are client spans.

    ``with db.connection() as conn`` is a span ``<name> transaction`` (commit included); each
    ``execute``, ``executemany``, ``copy_expert`` or ``callproc`` of its cursors is a span named by
    the statement's summary (``INSERT demo_effects``), without its text or values.

    Args:
        inner: The database the calls go to.
        tracer: Makes the spans.
        parent: The context whose span parents them (the job's).
        name: Which database it is for the handler (``rds``, ``redshift``).
    """

    def __init__(self, inner: DatabasePort, tracer: Tracer, parent: Context, name: str) -> None:
        self._inner, self._tracer, self._parent, self._name = inner, tracer, parent, name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Borrow a connection for one transaction, inside its span."""
        attributes: dict[str, str | int] = {"db.system.name": _POSTGRESQL, "tornado.database": self._name}
        name = f"{self._name} transaction"
        with ended_span(
            self._tracer, name, kind=SpanKind.CLIENT, parent=self._parent, attributes=attributes
        ) as span:
            statements = _Statements(self._tracer, trace.set_span_in_context(span), self._name)
            with self._inner.connection() as conn:
                yield TracedConnection(conn, statements)

    def close(self) -> None:
        """Close the inner database's connections."""
        self._inner.close()


class _Statements:
    """Makes the span of one statement, under its transaction's span."""

    __slots__ = ("_name", "_parent", "_tracer")

    def __init__(self, tracer: Tracer, parent: Context, name: str) -> None:
        self._tracer, self._parent, self._name = tracer, parent, name

    def span(self, query: object) -> AbstractContextManager[Span]:
        operation, table = statement_summary(query)
        summary = f"{operation} {table}" if table else operation
        attributes: dict[str, str | int] = {
            "db.system.name": _POSTGRESQL, "db.operation.name": operation, "db.query.summary": summary,
            "tornado.database": self._name, **({"db.collection.name": table} if table else {}),
        }  # fmt: skip
        return ended_span(
            self._tracer, summary, kind=SpanKind.CLIENT, parent=self._parent, attributes=attributes
        )


class _Forwarding:
    """Forwards what it does not define, attribute writes included, to the object it wraps."""

    __slots__ = ("_inner", "_statements")

    def __init__(self, inner: Any, statements: _Statements) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_statements", statements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


class TracedConnection(_Forwarding):
    """A DB-API connection whose cursors trace their statements."""

    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> TracedCursor:
        """A cursor of the inner connection (same arguments)."""
        return TracedCursor(self._inner.cursor(*args, **kwargs), self._statements)

    def __enter__(self) -> TracedConnection:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)


class TracedCursor(_Forwarding):
    """A DB-API cursor whose statements are spans."""

    __slots__ = ()

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one statement (same arguments as the inner cursor's)."""
        with self._statements.span(query):
            return self._inner.execute(query, *args, **kwargs)

    def executemany(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one statement for each set of values."""
        with self._statements.span(query):
            return self._inner.executemany(query, *args, **kwargs)

    def copy_expert(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a ``COPY`` (psycopg2)."""
        with self._statements.span(query):
            return self._inner.copy_expert(query, *args, **kwargs)

    def callproc(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a stored procedure."""
        with self._statements.span(f"CALL {name}"):
            return self._inner.callproc(name, *args, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def __enter__(self) -> TracedCursor:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._inner.__exit__(*exc)
