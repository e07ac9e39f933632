"""Docker fixtures: the project's own Docker engine, the offline base image, a worker image.

The engine is a private ``dockerd`` in a fresh state dir (started once per session,
stopped at its end). The base image is built once from Debian's mirror and kept as a
``docker save`` tarball in the image cache (``$TORNADO_IMAGE_CACHE``, else a folder of the
user's cache named after the base image's recipe: :func:`image_cache`), so later sessions,
fresh clones included, load it in seconds. If Docker's engine (or mmdebstrap/debootstrap, with no
cached base) is not installed the tests are skipped, except in strict mode (CI: ``TORNADO_STRICT``
or ``CI``) where that is a failure; an installed engine that does not start is always a failure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tornado_core.adapters.runtimes.docker.engine import DockerEngine
from tornado_core.adapters.runtimes.images.builder import (
    BASE_IMAGE,
    ImageRequest,
    build_image,
    ensure_base_image,
    verify_task_image,
)
from tornado_core.toolchain.strict import strict_mode

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The image the docker tests deploy: tornado-core with its built-in demo tasks.
TEST_IMAGE = "tornado-test/demo:{version}"


#: What the base image is made of: a change to any of them builds it anew (a new cache folder).
BASE_RECIPE = (
    REPO_ROOT / "docker" / "base" / "mkrootfs.sh",
    REPO_ROOT / "tornado_core" / "adapters" / "runtimes" / "images" / "builder.py",
    REPO_ROOT / "tornado_core" / "adapters" / "runtimes" / "images" / "apt_sources.py",
)


def image_cache() -> Path:
    """Where base-image tarballs and dependency wheels are kept between sessions.

    ``$TORNADO_IMAGE_CACHE`` if set, else ``$XDG_CACHE_HOME/tornado-tests/images-<recipe>``
    (``~/.cache`` by default), outside the checkout: a fresh clone (CI) loads the base image its
    last session built instead of debootstrapping it again (about a minute), for as long as the
    base image's recipe (:data:`BASE_RECIPE`) is the same. Dependency wheels are cached there too
    (their cache already keys each resolution by the requirements).
    """
    configured = os.environ.get("TORNADO_IMAGE_CACHE")
    if configured:
        return Path(configured)
    recipe = hashlib.sha256(b"".join(path.read_bytes() for path in BASE_RECIPE)).hexdigest()[:12]
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return home / "tornado-tests" / f"images-{recipe}"


def _unavailable(reason: str) -> None:
    if strict_mode(os.environ):
        pytest.fail(f"Docker is required on CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine(make_state_dir: Callable[[], Path]) -> Iterator[DockerEngine]:
    """A running private Docker engine (``DOCKER_HOST`` is :attr:`DockerEngine.docker_host`)."""
    if not (shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin")):
        _unavailable("dockerd is not installed (apt-get install docker.io iptables)")
    engine = DockerEngine(make_state_dir())
    engine.up()  # installed but not starting is a failure, also locally
    try:
        yield engine
    finally:
        engine.down()


@pytest.fixture(scope="session")
def docker_client(docker_engine: DockerEngine) -> Iterator[Any]:
    """A docker SDK client of the session's engine."""
    client = docker_engine.client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The offline base image, loaded from the cache tarball or built once (about a minute)."""
    cached = any(image_cache().glob("*.tar.gz"))
    builders = [
        shutil.which(name, path="/usr/local/bin:/usr/bin:/usr/sbin") for name in ("mmdebstrap", "debootstrap")
    ]
    if not cached and not any(builders):
        _unavailable("neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)")
    ensure_base_image(docker_client, cache_dir=image_cache())
    return BASE_IMAGE


@pytest.fixture(scope="session")
def demo_version() -> str:
    """The version of the built-in demo tasks."""
    from tornado_tasks.demo import __version__

    return str(__version__)


@pytest.fixture(scope="session")
def worker_image(docker_client: Any, base_image: str, demo_version: str) -> str:
    """A worker image of this source tree (demo tasks included), built once per session."""
    request = ImageRequest(
        task="demo.sleep", version=demo_version, tag=TEST_IMAGE.format(version=demo_version)
    )
    built = build_image(docker_client, request, cache_dir=image_cache())
    verify_task_image(docker_client, built.tag, "demo.echo", demo_version)
    return built.tag
