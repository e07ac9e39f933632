"""The local stack: the project starts its own real PostgreSQL and SQS/S3 endpoint.

``tornado dev up`` and the pytest fixtures use the same :class:`DevStack`.
"""

from tornado_core.adapters.postgres.admin import DatabaseAdmin, migrate, with_database
from tornado_core.devstack.errors import DevStackError
from tornado_core.devstack.external import ExternalStack
from tornado_core.devstack.stack import (
    BUCKET,
    ERP_DB,
    JOBS_DB,
    REDSHIFT_DB,
    REGION,
    TEMPLATE_DB,
    DevStack,
    StackInfo,
    StackStatus,
)
from tornado_core.local_machine import default_state_dir

__all__ = [
    "BUCKET",
    "ERP_DB",
    "JOBS_DB",
    "REDSHIFT_DB",
    "REGION",
    "TEMPLATE_DB",
    "DatabaseAdmin",
    "DevStack",
    "DevStackError",
    "ExternalStack",
    "StackInfo",
    "StackStatus",
    "default_state_dir",
    "migrate",
    "with_database",
]
