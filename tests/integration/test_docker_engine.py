"""The project's private Docker engine: idempotent start, status, own socket, no host networking."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tornado_core.adapters.runtimes.docker.engine import DockerEngine, DockerEngineError, default_docker_host
from tornado_core.adapters.runtimes.images.builder import ensure_base_image

from ..docker_fixtures import image_cache


def test_up_is_idempotent_and_reports_where_it_listens(docker_engine: DockerEngine) -> None:
    before = docker_engine.status()
    host = docker_engine.up()
    after = docker_engine.status()
    assert after.running and after.pid == before.pid  # the running engine was kept, not restarted
    assert host == f"unix://{docker_engine.socket}" == docker_engine.env()["DOCKER_HOST"]
    assert docker_engine.socket.is_socket()
    assert after.version


def test_the_engine_touches_no_host_networking(docker_client: Any) -> None:
    networks = {network.name for network in docker_client.networks.list()}
    assert networks == {"host", "none"}
    info = docker_client.info()
    assert info["DockerRootDir"].endswith("/docker/data")


def test_a_second_engine_starts_stops_and_loads_the_cached_base_image(
    make_state_dir: Callable[[], Path], base_image: str
) -> None:
    engine = DockerEngine(make_state_dir())
    engine.up()
    client = engine.client()
    try:
        assert ensure_base_image(client, cache_dir=image_cache()) == "loaded"  # from the cache, not rebuilt
        assert ensure_base_image(client, cache_dir=image_cache()) == "present"
        output = client.containers.run(base_image, ["python3", "-c", "print('hi')"], remove=True)
        assert output.strip() == b"hi"
    finally:
        client.close()
        engine.down()
    status = engine.status()
    assert not status.running and status.pid is None
    engine.down()  # stopping twice is fine


def test_a_missing_dockerd_is_a_clear_error(tmp_path: Path) -> None:
    engine = DockerEngine(tmp_path, dockerd=str(tmp_path / "no-such-dockerd"))
    with pytest.raises(DockerEngineError, match="dockerd is not installed"):
        engine.up()


def test_the_cli_runs_an_engine_and_uses_it_for_images(
    make_state_dir: Callable[[], Path], docker_engine: DockerEngine, base_image: str
) -> None:
    from click.testing import CliRunner
    from tornado_cli.main import cli

    state, runner = make_state_dir(), CliRunner()
    up = runner.invoke(cli, ["docker", "up", "--state-dir", str(state)])
    assert up.exit_code == 0 and "Docker engine is up" in up.output, up.output
    env = runner.invoke(cli, ["docker", "env", "--state-dir", str(state)])
    assert env.output.strip() == f"export DOCKER_HOST=unix://{state.resolve()}/docker/docker.sock"
    assert runner.invoke(cli, ["docker", "status", "--state-dir", str(state)]).exit_code == 0
    found = default_docker_host({"TORNADO_STATE_DIR": str(state)})  # what DockerRuntime(settings) uses
    assert found == f"unix://{state.resolve()}/docker/docker.sock"
    assert default_docker_host({"DOCKER_HOST": "tcp://elsewhere:2375"}) == "tcp://elsewhere:2375"
    assert runner.invoke(cli, ["docker", "down", "--state-dir", str(state)]).exit_code == 0
    assert runner.invoke(cli, ["docker", "status", "--state-dir", str(state)]).exit_code == 3

    build = runner.invoke(
        cli,
        ["image", "--state-dir", str(state), "build-base"],
        env={"DOCKER_HOST": docker_engine.docker_host},
    )
    assert build.exit_code == 0 and build.output.strip().endswith(f"{base_image}: present"), build.output
