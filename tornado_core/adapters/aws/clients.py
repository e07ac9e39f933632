"""boto3 clients with timeouts and retries suited to Tornado's calls.

The only module that builds boto3 clients; the SQS and S3 adapters take a
client so tests and the composition root decide where it points.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

#: Seconds to open a TCP connection before giving up (fail fast: 503, not a hang).
CONNECT_TIMEOUT = 2.0
#: Seconds to wait for a response; above SQS's longest long poll (20 s).
READ_TIMEOUT = 30.0
#: Attempts per call, first included (botocore "standard" retry mode).
MAX_ATTEMPTS = 3
#: HTTP connections per client; workers poll and heartbeat from many threads.
MAX_POOL_CONNECTIONS = 50


def client_config(*, path_style: bool = False, read_timeout: float = READ_TIMEOUT) -> Config:
    """The botocore configuration every Tornado client uses.

    Args:
        path_style: Address S3 buckets in the path (needed by local endpoints).
        read_timeout: Seconds to wait for an answer; short on an API request's path, long
            enough for a long poll on a worker's receives.
    """
    extra: dict[str, Any] = {"s3": {"addressing_style": "path"}} if path_style else {}
    return Config(
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        connect_timeout=min(CONNECT_TIMEOUT, read_timeout),
        read_timeout=read_timeout,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        **extra,
    )


def make_client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None,
    credentials: tuple[str, str] | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> Any:
    """Build a boto3 client for ``service`` ("sqs", "s3", ...).

    Args:
        service: The AWS service name.
        region: The AWS region, e.g. ``"us-east-1"``.
        endpoint_url: A local endpoint (moto) instead of AWS; ``None`` for AWS.
        credentials: ``(access key id, secret key)``; by default the usual
            boto3 chain (environment, profile, instance role).
        read_timeout: Seconds to wait for each answer (see :func:`client_config`).

    Returns:
        A boto3 client.
    """
    keys = credentials or (None, None)
    session = boto3.session.Session(aws_access_key_id=keys[0], aws_secret_access_key=keys[1])
    return session.client(
        service,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_url,
        config=client_config(path_style=endpoint_url is not None, read_timeout=read_timeout),
    )
