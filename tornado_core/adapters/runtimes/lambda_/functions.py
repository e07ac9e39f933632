"""A task version's Lambda function: its code (a zip in the bucket, or an image), created or updated."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from tornado_core.adapters.aws.errors import error_code
from tornado_core.adapters.runtimes.iam import role_propagating
from tornado_core.adapters.runtimes.lambda_.config import LambdaConfig
from tornado_core.adapters.runtimes.lambda_.packaging import build_package
from tornado_core.errors import ConfigError, RuntimeFailure
from tornado_core.ports.runtime import Deployment
from tornado_core.worker.lambda_entry import HANDLER

logger = logging.getLogger("tornado.runtime.lambda")

PYTHON_RUNTIME = "python3.11"
#: Seconds a function may take to become ready after a change.
READY_TIMEOUT = 300.0
_READY_STATES = ("Active", "Inactive")  # an idle (Inactive) function still runs when invoked

T = TypeVar("T")


def found(call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` when Lambda answers that the resource does not exist."""
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def wait_for(
    look: Callable[[], T | None], *, timeout: float, interval: float, failure: Callable[[], str]
) -> T:
    """The first answer of ``look`` that is not ``None``, polling every ``interval`` seconds.

    Raises:
        RuntimeFailure: ``failure()`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while (answer := look()) is None:
        if time.monotonic() > deadline:
            raise RuntimeFailure(failure())
        time.sleep(interval)
    return answer


@dataclass(frozen=True)
class Code:
    """Where a function's code is, and how to tell whether a function already has it.

    Attributes:
        create: The ``create_function`` arguments naming the code.
        update: The ``update_function_code`` arguments.
        marker: The zip's ``CodeSha256``, or the image URI.
        image: Whether it is a container image.
    """

    create: dict[str, Any]
    update: dict[str, Any]
    marker: str
    image: bool


def code_of(deployment: Deployment, *, function: str, bucket: str, s3: Any, architecture: str) -> Code:
    """The deployment's code: its image, or the zip of its wheels uploaded to ``bucket`` (once).

    Raises:
        ConfigError: Neither (or both) an image and a folder of code.
        PackagingError: The folder cannot become a Lambda zip.
    """
    if bool(deployment.image) == bool(deployment.python_path):
        raise ConfigError(
            "the lambda runtime deploys either a zip of the version's code (--python-path: a folder of "
            "wheels or installed packages) or a container image (--image), exactly one of them"
        )
    if deployment.image:
        image = {"ImageUri": deployment.image}
        create = {"PackageType": "Image", "Code": image, "ImageConfig": {"Command": [HANDLER]}}
        return Code(create=create, update=image, marker=deployment.image, image=True)
    package = build_package(Path(str(deployment.python_path)), architecture=architecture)
    key = f"lambda/{function}/{package.hex_digest}.zip"
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=package.data, ContentType="application/zip")
        logger.info("uploaded s3://%s/%s (%d files)", bucket, key, package.files)
    where = {"S3Bucket": bucket, "S3Key": key}
    create = {"PackageType": "Zip", "Code": where, "Runtime": PYTHON_RUNTIME, "Handler": HANDLER}
    return Code(create=create, update=where, marker=package.sha256, image=False)


class FunctionKeeper:
    """Creates, updates, waits for and deletes functions.

    Args:
        client: A boto3 Lambda client.
        config: The runtime's configuration (memory, architecture, network, polling).
    """

    def __init__(self, client: Any, config: LambdaConfig) -> None:
        self._client = client
        self._config = config

    def get(self, name: str) -> dict[str, Any] | None:
        """The function (``get_function``'s answer: configuration, code, tags) or ``None``."""
        answer = found(lambda: self._client.get_function(FunctionName=name))
        return None if answer is None else dict(answer)

    def ensure(
        self, name: str, code: Code, settings: dict[str, Any], *, tags: dict[str, str], fresh_role: bool
    ) -> None:
        """Create the function, or update its code and configuration where they differ.

        Args:
            name: Function name.
            code: Its code.
            settings: Role, timeout, environment... (``update_function_configuration`` arguments).
            tags: Tags of a new function.
            fresh_role: The role was just created (Lambda may not see it yet: wait for it).

        Raises:
            ConfigError: The function exists with the other package type.
            RuntimeFailure: The function did not become ready.
        """
        wanted = {**settings, "Description": _described(settings, code)}
        current = self.get(name)
        if current is None:
            self._create(
                name,
                {**wanted, **code.create, "Architectures": [self._config.architecture]},
                tags,
                fresh_role,
            )
            return
        configuration = current["Configuration"]
        if (configuration.get("PackageType", "Zip") == "Image") != code.image:
            raise ConfigError(f"function {name} has the other package type: retire the version first")
        self.wait_ready(name)
        if _marker(current) != code.marker:
            self._client.update_function_code(FunctionName=name, **code.update)
            self.wait_ready(name)
        if configuration.get("Description") != wanted["Description"]:
            extra = {} if code.image else {"Runtime": PYTHON_RUNTIME, "Handler": HANDLER}
            image = {"ImageConfig": code.create["ImageConfig"]} if code.image else {}
            self._client.update_function_configuration(FunctionName=name, **wanted, **extra, **image)
            self.wait_ready(name)

    def wait_ready(self, name: str) -> dict[str, Any]:
        """Wait until the function is ready and its last update done; returns its configuration.

        Raises:
            RuntimeFailure: It failed (with Lambda's reason) or is not ready in time.
        """
        return wait_for(
            lambda: self._ready(name),
            timeout=READY_TIMEOUT,
            interval=self._config.poll_interval,
            failure=lambda: f"function {name} not ready after {READY_TIMEOUT:.0f}s",
        )

    def _ready(self, name: str) -> dict[str, Any] | None:
        configuration = dict(self._client.get_function_configuration(FunctionName=name))
        state, update = configuration.get("State", "Active"), configuration.get("LastUpdateStatus")
        if state == "Failed" or update == "Failed":
            reason = configuration.get("StateReason") or configuration.get("LastUpdateStatusReason")
            raise RuntimeFailure(f"function {name} failed: {reason}")
        return configuration if state in _READY_STATES and update in (None, "Successful") else None

    def delete(self, name: str) -> None:
        """Delete the function with all its versions (a missing one is fine)."""
        if found(lambda: self._client.delete_function(FunctionName=name)) is not None:
            logger.info("deleted function %s", name)

    def _create(self, name: str, spec: dict[str, Any], tags: dict[str, str], fresh_role: bool) -> None:
        deadline = time.monotonic() + (self._config.role_wait if fresh_role else 0.0)
        while True:
            try:
                self._client.create_function(FunctionName=name, Tags=tags, **spec)
                break
            except ClientError as exc:  # a new role takes a few seconds to reach Lambda
                if not role_propagating(exc) or time.monotonic() + self._config.poll_interval > deadline:
                    raise
                time.sleep(self._config.poll_interval)
        logger.info("created function %s", name)
        self.wait_ready(name)


def _described(settings: dict[str, Any], code: Code) -> str:
    """The description, holding a hash of the configuration: a change of any of it shows."""
    how = {
        key: value for key, value in code.create.items() if key != "Code"
    }  # code changes show by themselves
    digest = hashlib.sha256(json.dumps([settings, how], sort_keys=True).encode()).hexdigest()[:16]
    return f"Tornado worker (spec {digest})"


def _marker(function: dict[str, Any]) -> str:
    code = function.get("Code") or {}
    return str(code.get("ImageUri") or function["Configuration"].get("CodeSha256", ""))
