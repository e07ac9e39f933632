"""botocore's errors read one way everywhere: an error's code, and AWS failures as a runtime's failures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from tornado_core.errors import RuntimeFailure


def error_code(exc: ClientError) -> str:
    """The code AWS answered (``NoSuchKey``, ``ResourceNotFoundException``...); ``""`` if none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def runtime_failures(action: str) -> Iterator[None]:
    """Turn botocore errors into :class:`RuntimeFailure` naming ``action`` (the AWS runtimes)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise RuntimeFailure(f"{action}: {exc}") from exc
