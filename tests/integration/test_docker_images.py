"""Images built offline: the debootstrapped base, the worker image contract, a task project's own build."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from tornado_core.adapters.runtimes.images.builder import (
    ImageError,
    ImageRequest,
    build_image,
    image_ref,
    repo_root,
    verify_task_image,
)

from ..docker_fixtures import image_cache


def run(client: Any, image: str, *command: str) -> str:
    output = client.containers.run(image, list(command), remove=True, network_mode="none")
    return output.decode().strip() if isinstance(output, bytes) else str(output).strip()


def test_the_base_image_has_python_venv_certificates_and_tini(docker_client: Any, base_image: str) -> None:
    script = (
        "import sys, ssl, venv, os; print(sys.version_info[:2] == (3, 11),"
        " os.path.exists('/usr/bin/tini'), os.path.exists(ssl.get_default_verify_paths().cafile or ''))"
    )
    assert run(docker_client, base_image, "python3", "-c", script) == "True True True"


def test_the_worker_image_honours_the_contract(
    docker_client: Any, worker_image: str, demo_version: str
) -> None:
    config = docker_client.images.get(worker_image).attrs["Config"]
    labels = config["Labels"]
    assert labels["io.tornado.task"] == "demo.sleep"
    assert labels["io.tornado.version"] == demo_version
    for key in ("title", "version", "revision", "created", "source"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert "/opt/venv/bin" in next(e for e in config["Env"] if e.startswith("PATH="))


def test_containers_run_as_user_10001_under_one_init(docker_client: Any, worker_image: str) -> None:
    # PID 1 is tini and its only child is the command: no second init.
    script = "import os; print(os.getuid(), open('/proc/1/comm').read().strip(), os.getppid())"
    output = docker_client.containers.run(worker_image, ["python3", "-c", script], remove=True)
    assert output.decode().split() == ["10001", "tini", "1"]


def test_dockerfiles_need_no_registry_and_no_buildkit() -> None:
    for dockerfile in (repo_root() / "docker").glob("*/Dockerfile"):
        text = dockerfile.read_text()
        assert "# syntax" not in text and "--mount" not in text, dockerfile
        assert text.count("ARG BASE_IMAGE") == 1 and "FROM ${BASE_IMAGE}" in text, dockerfile


def test_verify_refuses_an_image_without_the_task_version(docker_client: Any, worker_image: str) -> None:
    with pytest.raises(ImageError, match=r"cannot run demo\.echo 0\.0\.0-missing"):
        verify_task_image(docker_client, worker_image, "demo.echo", "0.0.0-missing")


def test_image_ref_is_a_valid_docker_name() -> None:
    assert image_ref("Ponto.Punch", "2.1.0+build.7") == "tornado/ponto.punch:2.1.0-build.7"


def _task_project(root: Path) -> Path:
    """A task project with its own Dockerfile (FROM the base image) and a .dockerignore."""
    package = root / "hello_task"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "2.0.0"\n')
    (package / "tasks.py").write_text(
        textwrap.dedent(
            """
            from pydantic import BaseModel
            from tornado_core import TaskContext, task

            class Greet(BaseModel):
                name: str

            @task(name="hello.greet", payload=Greet, version="2.0.0")
            def greet(ctx: TaskContext, payload: Greet) -> dict[str, str]:
                return {"hello": payload.name}
            """
        )
    )
    (root / "setup.cfg").write_text(
        textwrap.dedent(
            """
            [metadata]
            name = hello-task
            version = 2.0.0
            [options]
            packages = find:
            install_requires = tornado-core
            [options.entry_points]
            tornado.tasks =
                hello = hello_task.tasks
            """
        )
    )
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69", "wheel"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    dockerfile = (repo_root() / "docker" / "worker" / "Dockerfile").read_text()
    (root / "Dockerfile").write_text(dockerfile + "COPY . /home/tornado/context/\n")
    (root / ".dockerignore").write_text("secret.txt\n")
    (root / "secret.txt").write_text("do not ship\n")
    (root / "notes.txt").write_text("ship me\n")
    return root


def test_a_task_project_builds_with_its_own_dockerfile(
    docker_client: Any, base_image: str, tmp_path: Path
) -> None:
    project = _task_project(tmp_path / "hello")
    request = ImageRequest(
        task="hello.greet", version="2.0.0", context=project, tag="tornado-test/hello:2.0.0"
    )
    built = build_image(docker_client, request, cache_dir=image_cache())
    verify_task_image(docker_client, built.tag, "hello.greet", "2.0.0")
    listing = run(docker_client, built.tag, "ls", "/home/tornado/context").split()
    assert "notes.txt" in listing and "Dockerfile" in listing
    assert "secret.txt" not in listing and ".dockerignore" not in listing
    labels = docker_client.images.get(built.tag).labels
    assert labels["io.tornado.task"] == "hello.greet" and labels["io.tornado.version"] == "2.0.0"
    docker_client.images.remove(built.tag, force=True)
