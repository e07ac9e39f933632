"""Structured logs: one JSON object per line (or a readable line in a terminal), with the job and trace.

``tornado api``, ``tornado worker`` and the other commands call :func:`configure_logging` once. The
fields that say which job, tenant and trace a line belongs to come from a context variable: the
worker binds them around each job (:func:`job_log_fields`), the API per authenticated request
(:func:`bind_log_fields`), so any logger used underneath carries them without being handed them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

from tornado_core.errors import ConfigError
from tornado_core.jsontext import compact
from tornado_core.message import Envelope

LogFormat = Literal["auto", "json", "text"]
#: The formats :func:`configure_logging` knows.
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "text")
#: The context fields a JSON line may carry, in the order they are written.
LOG_FIELDS = ("job_id", "tenant", "task", "version", "trace_id", "span_id")
#: The human-readable line (the format Tornado has always written).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: The fields bound in this thread or task (a context variable: each asyncio task and thread has its own).
_FIELDS: ContextVar[Mapping[str, str]] = ContextVar("tornado_log_fields", default=MappingProxyType({}))
#: Record attributes the job logger (``tornado_core.task_context.job_logger``) sets, by field.
_RECORD_FIELDS = {"job_id": "job", "task": "task", "version": "version"}


def bind_log_fields(**fields: str | None) -> Token[Mapping[str, str]]:
    """Add fields to the log lines of this thread or asyncio task from now on (``None`` values are skipped).

    Returns:
        The token that :meth:`ContextVar.reset` takes to undo it (a request's task may just end).
    """
    bound = {**_FIELDS.get(), **{name: value for name, value in fields.items() if value is not None}}
    return _FIELDS.set(bound)


@contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """``with log_fields(job_id=...):`` the lines logged inside carry the fields."""
    token = bind_log_fields(**fields)
    try:
        yield
    finally:
        _FIELDS.reset(token)


def current_log_fields() -> Mapping[str, str]:
    """The fields bound here now."""
    return _FIELDS.get()


def trace_id_of(traceparent: object) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``), or ``None``."""
    if not isinstance(traceparent, str):
        return None
    parts = traceparent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or parts[1] == "0" * 32:
        return None
    return parts[1].lower()


def job_log_fields(
    envelope: Envelope, *, trace_id: str | None = None, span_id: str | None = None
) -> AbstractContextManager[None]:
    """The fields of one job's run: its identity, and its trace (the envelope's when not traced here)."""
    return log_fields(
        job_id=str(envelope.job_id), tenant=str(envelope.tenant), task=str(envelope.task),
        version=str(envelope.version), trace_id=trace_id or trace_id_of(envelope.traceparent),
        span_id=span_id,
    )  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts``, ``level``, ``logger``, ``message``, then the
    bound fields (:data:`LOG_FIELDS`) and ``exception`` (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        message, tag = record.getMessage(), getattr(record, "job_tag", None)
        if isinstance(tag, str) and message.startswith(tag):  # the job logger's [job=...] tag: fields here
            message = message[len(tag) :]
        line: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        bound = _FIELDS.get()
        for name in LOG_FIELDS:
            value = bound.get(name)
            if value is None and name in _RECORD_FIELDS:
                value = getattr(record, _RECORD_FIELDS[name], None)
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return compact(line)


def resolve_format(name: str, stream: TextIO) -> Literal["json", "text"]:
    """``json`` or ``text``: ``auto`` is text when ``stream`` is a terminal, JSON otherwise.

    Raises:
        ConfigError: Not one of :data:`LOG_FORMATS`.
    """
    if name not in LOG_FORMATS:
        raise ConfigError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {name!r}")
    if name == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return "json" if name == "json" else "text"


def log_handler(name: str = "auto", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (standard error by default) in the format ``name`` resolves to."""
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    chosen = resolve_format(name, target)
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(name: str = "auto", level: str | int = "INFO", *, stream: TextIO | None = None) -> None:
    """Send the process's log records to standard error in format ``name``, from ``level`` up.

    Like :func:`logging.basicConfig`, it leaves a root logger that already has handlers as it is
    (a test runner's, an embedding application's).

    Args:
        name: ``auto`` (text in a terminal, JSON otherwise), ``json`` or ``text``.
        level: The root logger's level (``"INFO"``, ``logging.DEBUG``...).
        stream: Where lines go; standard error by default.

    Raises:
        ConfigError: An unknown format.
    """
    handler = log_handler(name, stream)
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, handlers=[handler])
