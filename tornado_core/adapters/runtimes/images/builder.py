"""Container images without a registry: the offline base image and per-task-version images.

* The base image (``tornado/python:3.11-bookworm``: Debian, python3, python3-venv,
  ca-certificates, tini) is debootstrapped from a Debian mirror (``$TORNADO_DEBIAN_MIRROR``,
  else the one this machine's apt uses: :func:`debian_mirror`) by
  ``docker/base/mkrootfs.sh`` and ``docker import``-ed; a ``docker save | gzip``
  tarball in the cache folder makes later engines load it in about a second.
* A task version's image is built from ``docker/worker/Dockerfile`` (or the task
  project's own Dockerfile) with the legacy builder through the docker SDK, from a
  context holding a host-made wheelhouse; it carries OCI labels and
  ``io.tornado.task`` / ``io.tornado.version``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors
from docker.utils.build import exclude_paths

from tornado_core.adapters.runtimes.images.apt_sources import debian_archive
from tornado_core.adapters.runtimes.images.contract import TASK_LABEL, VERSION_LABEL
from tornado_core.adapters.runtimes.images.wheelhouse import build_wheelhouse
from tornado_core.errors import RuntimeFailure
from tornado_core.local_machine import locked

#: The offline base image every Tornado image builds ``FROM`` (build arg ``BASE_IMAGE``).
BASE_IMAGE = "tornado/python:3.11-bookworm"
DEBIAN_SUITE = "bookworm"
#: Names the Debian mirror to build the base image from (else this machine's apt sources are read).
MIRROR_VARIABLE = "TORNADO_DEBIAN_MIRROR"
#: Never copied from a task project into a build context.
ALWAYS_EXCLUDED = (
    ".git",
    ".venv",
    ".tornado",
    "**/__pycache__",
    "build",
    "dist",
    "*.egg-info",
    "wheels",
    "deps",
)

Log = Callable[[str], None]


class ImageError(RuntimeFailure):
    """An image could not be built, imported, loaded or verified."""


def _quiet(_line: str) -> None:
    """Default log: discard."""


def repo_root() -> Path:
    """The source tree of this tornado-core (holds ``docker/`` and ``setup.cfg``)."""
    return Path(__file__).resolve().parents[4]  # tornado_core/adapters/runtimes/images/builder.py


def image_ref(task: str, version: str, *, repository: str = "tornado") -> str:
    """The image name of a task version, e.g. ``tornado/demo.sleep:1.0.0``."""
    name = re.sub(r"[^a-z0-9._-]+", "-", task.lower()).strip("._-") or "task"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", version)[:128].lstrip(".-") or "latest"
    return f"{repository}/{name}:{tag}"


# --------------------------------------------------------------------------- base image


def debian_mirror(apt_dir: Path = Path("/etc/apt"), env: Mapping[str, str] | None = None) -> str:
    """The Debian mirror to build the base image from.

    ``$TORNADO_DEBIAN_MIRROR`` if set, else the Debian archive this machine's apt sources name
    (``sources.list``, ``sources.list.d/*.list`` and ``*.sources``; not the security archive).

    Args:
        apt_dir: The apt configuration folder.
        env: The environment (default: ``os.environ``).

    Returns:
        The mirror's URL, e.g. ``http://mirror.example.test/debian``.

    Raises:
        ImageError: Neither names a Debian mirror.
    """
    environ = os.environ if env is None else env
    chosen = environ.get(MIRROR_VARIABLE, "").strip() or debian_archive(apt_dir)
    if not chosen:
        raise ImageError(
            f"no Debian mirror to build the base image from: {MIRROR_VARIABLE} is not set and the apt "
            f"sources in {apt_dir} name no Debian archive; set {MIRROR_VARIABLE}=<mirror URL> or pass "
            "--mirror <mirror URL>"
        )
    return chosen


def ensure_base_image(
    client: Any,
    *,
    cache_dir: Path,
    tag: str = BASE_IMAGE,
    suite: str = DEBIAN_SUITE,
    mirror: str | None = None,
    rebuild: bool = False,
    log: Log = _quiet,
) -> str:
    """Make ``tag`` exist in the engine: already there, loaded from the cache, or built.

    Args:
        client: A ``docker.DockerClient``.
        cache_dir: Keeps ``<tag>.tar.gz`` (``docker save``) between engines.
        tag: Image name of the base.
        suite: Debian release.
        mirror: Debian mirror URL (the apt mirror is reachable; registries are not). ``None``:
            :func:`debian_mirror`, asked only when the base must be built.
        rebuild: Build from the mirror even if the image or its tarball exists.
        log: Receives progress lines.

    Returns:
        ``"present"``, ``"loaded"`` or ``"built"``.

    Raises:
        ImageError: No Debian mirror is known, or the rootfs could not be made or imported.
    """
    tarball = cache_dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", tag) + ".tar.gz")
    with locked(cache_dir):
        if not rebuild and _exists(client, tag):
            return "present"
        if not rebuild and tarball.exists():
            log(f"loading {tag} from {tarball}")
            with tarball.open("rb") as handle:
                client.images.load(handle)
            if _exists(client, tag):
                return "loaded"
        mirror = mirror or debian_mirror()
        _build_base(client, tag=tag, suite=suite, mirror=mirror, workdir=cache_dir, log=log)
        _save(client, tag, tarball, log)
    return "built"


def _exists(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _build_base(client: Any, *, tag: str, suite: str, mirror: str, workdir: Path, log: Log) -> None:
    script = repo_root() / "docker" / "base" / "mkrootfs.sh"
    repository, _, version = tag.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=workdir) as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        log(f"building the {suite} root filesystem from {mirror} (about a minute)")
        result = subprocess.run(
            ["bash", str(script), str(rootfs), suite, mirror], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ImageError(f"{script.name} failed:\n{_tail(result.stderr or result.stdout)}")
        log(f"importing it as {tag}")
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            'CMD ["python3"]',
            f"LABEL org.opencontainers.image.title=tornado-python org.opencontainers.image.version={version}",
        ]
        client.api.import_image(src=str(rootfs), repository=repository, tag=version, changes=changes)


def _save(client: Any, tag: str, tarball: Path, log: Log) -> None:
    log(f"caching {tag} in {tarball}")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    with gzip.open(partial, "wb", compresslevel=1) as out:
        for chunk in client.images.get(tag).save(named=True):
            out.write(chunk)
    os.replace(partial, tarball)


# --------------------------------------------------------------------------- task images


@dataclass(frozen=True, kw_only=True)
class ImageRequest:
    """What to build.

    Attributes:
        task: Task name (label ``io.tornado.task``; the worker's ``--task``).
        version: Task version (label ``io.tornado.version``).
        context: The task project's folder; its own ``Dockerfile`` is used if it
            has one. ``None`` builds tornado-core's built-in tasks only.
        tag: Image name; defaults to :func:`image_ref`.
        base_image: Build arg ``BASE_IMAGE``.
        dockerfile: ``worker`` or ``api`` (the Dockerfiles in ``docker/``) when
            the context brings none.
        core_source: tornado-core's source tree (default: this one).
        labels: Extra image labels.
    """

    task: str
    version: str
    context: Path | None = None
    tag: str | None = None
    base_image: str = BASE_IMAGE
    dockerfile: str = "worker"
    core_source: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def image(self) -> str:
        """The tag the image gets."""
        return self.tag or image_ref(self.task, self.version)


@dataclass(frozen=True, kw_only=True)
class BuiltImage:
    """A built image."""

    tag: str
    image_id: str
    labels: dict[str, str]
    seconds: float


def build_image(client: Any, request: ImageRequest, *, cache_dir: Path, log: Log = _quiet) -> BuiltImage:
    """Build a task version's image (wheelhouse on the host, legacy builder, host network).

    Args:
        client: A ``docker.DockerClient``.
        request: What to build.
        cache_dir: Keeps dependency wheels between builds.
        log: Receives progress and build output lines.

    Raises:
        ImageError: The wheelhouse or the build failed.
    """
    started = time.monotonic()
    core = (request.core_source or repo_root()).resolve()
    with tempfile.TemporaryDirectory(prefix="tornado-build-") as scratch:
        context = Path(scratch)
        _assemble(context, request)
        projects = [core, *([request.context.resolve()] if request.context else [])]
        build_wheelhouse(context, projects, cache=cache_dir / "wheels", log=log)
        labels = _labels(request, request.context or core)
        args = {k.removeprefix("org.opencontainers.image."): v for k, v in labels.items()}
        buildargs = {
            "BASE_IMAGE": request.base_image,
            "TASK": request.task,
            "TASK_VERSION": request.version,
            "REVISION": args["revision"],
            "CREATED": args["created"],
            "SOURCE": args["source"],
        }
        if request.dockerfile == "api":
            buildargs["VERSION"] = buildargs.pop("TASK_VERSION")
        image_id = _stream_build(client, context, request.image, buildargs, labels, log)
    return BuiltImage(tag=request.image, image_id=image_id, labels=labels, seconds=time.monotonic() - started)


def verify_task_image(client: Any, tag: str, task: str, version: str) -> None:
    """Check that the image's tornado finds ``task`` in ``version`` (runs a throwaway container).

    Raises:
        ImageError: The image lacks that task version.
    """
    code = (
        "import sys; from tornado_core.registry import TaskRegistry; "
        "TaskRegistry.from_entry_points().get(sys.argv[1], sys.argv[2])"
    )
    try:
        client.containers.run(
            tag, ["python3", "-c", code, task, version], network_mode="none", remove=True, stderr=True
        )
    except docker.errors.ContainerError as exc:
        detail = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc)
        raise ImageError(f"image {tag} cannot run {task} {version}:\n{_tail(detail)}") from exc


def _assemble(context: Path, request: ImageRequest) -> None:
    """Copy the task project (honouring its .dockerignore) or tornado's Dockerfile into ``context``."""
    project = request.context
    if project is not None and (project / "Dockerfile").is_file():
        ignore_file = project / ".dockerignore"
        patterns = ignore_file.read_text().splitlines() if ignore_file.exists() else []
        keep = exclude_paths(str(project), [*patterns, *ALWAYS_EXCLUDED])
        for relative in sorted(keep):
            source = project / relative
            if source.is_file() and relative != ".dockerignore":
                (context / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, context / relative)
        shutil.copy2(project / "Dockerfile", context / "Dockerfile")
        return
    dockerfile = repo_root() / "docker" / request.dockerfile / "Dockerfile"
    if not dockerfile.is_file():
        raise ImageError(f"no Dockerfile {dockerfile}")
    shutil.copy2(dockerfile, context / "Dockerfile")


def _labels(request: ImageRequest, source_dir: Path) -> dict[str, str]:
    revision, source = _git(source_dir)
    return {
        "org.opencontainers.image.title": f"tornado {request.dockerfile} {request.task}",
        "org.opencontainers.image.version": request.version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.source": source,
        TASK_LABEL: request.task,
        VERSION_LABEL: request.version,
        **request.labels,
    }


def _git(path: Path) -> tuple[str, str]:
    """``(commit, origin url)`` of the repository holding ``path`` (``unknown``/path if none)."""

    def ask(*args: str) -> str:
        try:
            result = subprocess.run(
                ["git", "-C", str(path), *args], capture_output=True, text=True, check=False, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    return ask("rev-parse", "HEAD") or "unknown", ask("config", "--get", "remote.origin.url") or str(path)


def _stream_build(
    client: Any, context: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str], log: Log
) -> str:
    lines: list[str] = []
    stream = client.api.build(
        path=str(context), tag=tag, buildargs=buildargs, labels=labels, network_mode="host",
        rm=True, forcerm=True, pull=False, decode=True,
    )  # fmt: skip
    for chunk in stream:
        if "error" in chunk:
            raise ImageError(f"building {tag} failed: {chunk['error'].strip()}\n{_tail(''.join(lines))}")
        for line in _lines(chunk.get("stream", "")):
            lines.append(line + "\n")
            log(line)
    return str(client.images.get(tag).id)


def _lines(text: str) -> Iterable[str]:
    return (line for line in text.splitlines() if line.strip())


def _tail(text: str, count: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
