"""Tornado: heavy ERP background jobs off the request path.

The public API for task authors and operators; everything else is internal.
"""

from tornado_core.errors import (
    ConfigError,
    JobTimeout,
    NonRetryable,
    PayloadInvalid,
    Retry,
    TaskNotFound,
    TornadoError,
    VersionNotFound,
)
from tornado_core.registry import TaskRegistry
from tornado_core.retry import RetryPolicy
from tornado_core.settings import Settings
from tornado_core.task import TaskSpec, task
from tornado_core.task_context import TaskContext

__all__ = [
    "ConfigError",
    "JobTimeout",
    "NonRetryable",
    "PayloadInvalid",
    "Retry",
    "RetryPolicy",
    "Settings",
    "TaskContext",
    "TaskNotFound",
    "TaskRegistry",
    "TaskSpec",
    "TornadoError",
    "VersionNotFound",
    "task",
]
