"""Tornado: heavy ERP background jobs off the request path.

The public API: for task authors (``task``, ``TaskContext``, the errors a handler raises, the
ports a handler reaches through its context) and for ERP developers (``TornadoClient``).
Plugin packages that add HTTP endpoints or CLI commands use :mod:`tornado_core.extend`.
Everything else is internal; docs/architecture.md maps it.
"""

from tornado_core.client import TornadoClient
from tornado_core.errors import (
    ApiError,
    ConfigError,
    JobCancelled,
    JobTimeout,
    NonRetryable,
    ObjectStoreError,
    PayloadInvalid,
    Retry,
    TaskNotFound,
    TornadoError,
    VersionNotFound,
)
from tornado_core.key_limits import ConcurrencyLimit, RateLimit
from tornado_core.periodic import Periodic
from tornado_core.ports.database import DatabasePort
from tornado_core.ports.objects import ObjectStorePort
from tornado_core.registry import TaskRegistry
from tornado_core.retry import RetryPolicy
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec, task
from tornado_core.task_context import TaskContext
from tornado_core.task_schema import TaskSchema
from tornado_core.unique import UniqueJobs

__all__ = [
    "ApiError",
    "ConcurrencyLimit",
    "ConfigError",
    "DatabasePort",
    "JobCancelled",
    "JobTimeout",
    "NonRetryable",
    "ObjectStoreError",
    "ObjectStorePort",
    "PayloadInvalid",
    "Periodic",
    "RateLimit",
    "Retry",
    "RetryPolicy",
    "Settings",
    "TaskContext",
    "TaskNotFound",
    "TaskRegistry",
    "TaskSchema",
    "TaskSpec",
    "TornadoClient",
    "TornadoError",
    "UniqueJobs",
    "VersionNotFound",
    "task",
]
