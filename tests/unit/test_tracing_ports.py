"""The tracing proxies of a handler's object store and databases: a span per call, the port unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tornado_core.adapters.memory.stores import MemoryObjectStore
from tornado_core.errors import ObjectStoreError
from tornado_core.observability.tracing import Tracing
from tornado_core.observability.tracing_ports import TracedDatabase, TracedObjectStore, statement_summary


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    tracing = Tracing(exporter, batch=False)
    yield tracing
    tracing.close()


def under_a_job(tracing: Tracing) -> tuple[Any, Any]:
    """A root span standing for the job, and the context the proxies are given."""
    job = tracing.tracer.start_span("process demo")
    return job, trace.set_span_in_context(job)


def names(exporter: InMemorySpanExporter) -> list[str]:
    return [span.name for span in exporter.get_finished_spans()]


def span_named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    return next(span for span in exporter.get_finished_spans() if span.name == name)


@pytest.mark.parametrize(
    ("query", "summary"),
    [
        ("INSERT INTO demo_effects (job_id) VALUES (%s)", ("INSERT", "demo_effects")),
        ("  select count(*) from public.nfe_notas where id = %s", ("SELECT", "public.nfe_notas")),
        ('UPDATE "Ponto" SET x = 1', ("UPDATE", "Ponto")),
        ("CREATE TABLE IF NOT EXISTS demo_effects (job_id text)", ("CREATE", "demo_effects")),
        (b"DELETE FROM t WHERE a = 'secret'", ("DELETE", "t")),
        ("SELECT 1", ("SELECT", None)),
        ("", ("SQL", None)),
        (object(), ("SQL", None)),
    ],
)
def test_a_statement_is_summed_up_by_its_operation_and_table(
    query: object, summary: tuple[str, str | None]
) -> None:
    assert statement_summary(query) == summary


def test_each_object_store_call_is_a_client_span_under_the_job(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    job, context = under_a_job(tracing)
    store = TracedObjectStore(MemoryObjectStore("erp"), tracing.tracer, context)
    store.put("a/1", b"12345")
    assert store.get("a/1") == b"12345" and store.exists("a/1") and store.list("a/") == ["a/1"]
    with store.upload("a/2") as sink:
        sink.write(b"xy")
    assert b"".join(store.read_chunks("a/2", chunk_bytes=1)) == b"xy"
    store.delete("a/1")
    assert store.bucket == "erp"
    assert names(exporter) == [
        "S3.PutObject", "S3.GetObject", "S3.HeadObject", "S3.ListObjectsV2", "S3.Upload", "S3.GetObject",
        "S3.DeleteObject",
    ]  # fmt: skip
    put = span_named(exporter, "S3.PutObject")
    assert put.parent is not None and put.parent.span_id == job.get_span_context().span_id
    assert put.attributes is not None and dict(put.attributes).items() >= {
        "aws.s3.bucket": "erp", "aws.s3.key": "a/1", "aws.s3.bytes": 5, "rpc.method": "PutObject",
    }.items()  # fmt: skip


def test_a_failed_call_ends_its_span_in_error_and_still_raises(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    _job, context = under_a_job(tracing)
    store = TracedObjectStore(MemoryObjectStore(), tracing.tracer, context)
    with pytest.raises(ObjectStoreError):
        store.get("missing")
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


class Cursor:
    def __init__(self, log: list[str]) -> None:
        self.log, self.arraysize, self.rows = log, 1, [(1,), (2,)]

    def execute(self, query: str, values: Any = None) -> None:
        self.log.append(f"execute {query}")

    def copy_expert(self, query: str, file: Any) -> None:
        self.log.append(f"copy {query}")

    def fetchall(self) -> list[tuple[int]]:
        return self.rows

    def __iter__(self) -> Iterator[tuple[int]]:
        return iter(self.rows)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append("cursor closed")


class Connection:
    def __init__(self, log: list[str]) -> None:
        self.log, self.autocommit = log, False

    def cursor(self, name: str | None = None) -> Cursor:
        self.log.append(f"cursor {name}")
        return Cursor(self.log)


class Database:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.connections: list[Connection] = []
        self.dsn = "postgresql://erp"

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        self.connections.append(Connection(self.log))
        yield self.connections[-1]
        self.log.append("commit")

    def close(self) -> None:
        self.log.append("closed")


def test_a_transaction_and_its_statements_are_spans_and_the_connection_is_unchanged(
    tracing: Tracing, exporter: InMemorySpanExporter
) -> None:
    job, context = under_a_job(tracing)
    inner = Database()
    db = TracedDatabase(inner, tracing.tracer, context, "rds")
    with db.connection() as conn:
        conn.autocommit = True  # written through to the real connection
        with conn.cursor("named") as cur:
            cur.arraysize = 50
            cur.execute("SELECT * FROM notas WHERE id = %s", (1,))
            assert cur.fetchall() == [(1,), (2,)] and list(cur) == [(1,), (2,)] and cur.arraysize == 50
            cur.copy_expert("COPY pontos FROM STDIN", None)
    db.close()
    assert inner.connections[0].autocommit is True and db.dsn == "postgresql://erp"
    assert inner.log == [
        "cursor named", "execute SELECT * FROM notas WHERE id = %s", "copy COPY pontos FROM STDIN",
        "cursor closed", "commit", "closed",
    ]  # fmt: skip
    assert names(exporter) == ["SELECT notas", "COPY pontos", "rds transaction"]
    transaction, select = span_named(exporter, "rds transaction"), span_named(exporter, "SELECT notas")
    assert transaction.parent is not None and transaction.parent.span_id == job.get_span_context().span_id
    assert select.parent is not None and transaction.context is not None
    assert select.parent.span_id == transaction.context.span_id
    assert select.attributes is not None and dict(select.attributes).items() >= {
        "db.system.name": "postgresql", "db.operation.name": "SELECT", "db.collection.name": "notas",
        "tornado.database": "rds",
    }.items()  # fmt: skip
    assert "%s" not in str(dict(select.attributes))  # neither the statement's text nor its values
