"""The doors: a plugin package adds a route and a command with no change to the core.

``tests/data/plugin_site`` holds two packages as if installed: one that works, one that fails in
each way a plugin can. The broken one must be named in a clear error and take nothing down.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo
from tornado.testing import AsyncHTTPTestCase

from tornado_core.local_machine import tornado_argv
from tornado_core.message import Envelope
from tornado_core.naming import queue_spec
from tornado_core.plugins import API_GROUP, COMMANDS_GROUP, PluginError, discover
from tornado_core.registry import TaskRegistry
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import ApiApplication, make_app

SITE = Path(__file__).resolve().parents[1] / "data" / "plugin_site"
PLUGIN_MODULES = ("tornado_hello_plugin", "tornado_broken_plugin")


@pytest.fixture
def plugin_site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(SITE))
    yield SITE
    forget_plugins()


def forget_plugins() -> None:
    """Unload the test plugins, so the next test imports them afresh."""
    for name in [m for m in sys.modules if m.startswith(PLUGIN_MODULES)]:
        del sys.modules[name]


def test_discovery_names_each_plugin_and_its_package_without_importing_it(plugin_site: Path) -> None:
    found = {p.name: p for p in discover(API_GROUP)}
    assert {"hello", "broken", "clash", "ponto"} <= set(found)
    assert found["hello"].package == "tornado-hello-plugin 0.1.0"
    assert "tornado_hello_plugin.api" not in sys.modules
    assert [p.name for p in discover(COMMANDS_GROUP)] == sorted(p.name for p in discover(COMMANDS_GROUP))


def test_a_plugin_that_fails_to_import_is_named_in_the_error(plugin_site: Path) -> None:
    broken = next(p for p in discover(API_GROUP) if p.name == "broken")
    with pytest.raises(PluginError) as caught:
        broken.load()
    message = str(caught.value)
    assert "tornado.api plugin 'broken'" in message
    assert "tornado-broken-plugin 0.1.0" in message
    assert "RuntimeError: the hello database driver is not installed" in message


class PluginApiTest(AsyncHTTPTestCase):
    """The API with the test plugins installed beside ponto."""

    def setUp(self) -> None:
        sys.path.insert(0, str(SITE))
        importlib.invalidate_caches()
        super().setUp()

    def get_app(self) -> ApiApplication:
        registry = TaskRegistry()
        registry.register_module(demo)
        self.services = memory_services(registry)
        self.queue_name = queue_spec(self.services.settings.queue_prefix, registry.get("demo.echo")).name
        for spec in registry:
            self.services.queue.ensure_queue(queue_spec(self.services.settings.queue_prefix, spec))
        self.token = new_token()
        self.services.tenants.create("acme", hash_token(self.token))
        self.executor = ThreadPoolExecutor(4)
        with self.assertLogs("tornado_core.web.extensions", logging.ERROR) as logs:
            self.app = make_app(self.services, executor=self.executor)
        self.plugin_errors = [record.getMessage() for record in logs.records]
        return self.app

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()
        sys.path.remove(str(SITE))
        forget_plugins()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        response = self.fetch(path, method=method, body=data, headers=headers)
        return response.code, json.loads(response.body) if response.body else None

    def test_the_plugin_route_is_served_with_the_core_authentication(self) -> None:
        assert self.call("GET", "/v1/hello") == (200, {"hello": "acme", "plugin": "tornado-hello-plugin"})
        anonymous = self.fetch("/v1/hello")
        assert anonymous.code == 401
        assert json.loads(anonymous.body)["error"]["code"] == "unauthorized"

    def test_the_plugin_queues_jobs_storage_first_through_the_core(self) -> None:
        status, receipt = self.call("POST", "/v1/hello:echo", {"message": "oi"})
        assert status == 202, receipt
        queue = self.services.queue
        got = queue.receive(self.queue_name, max_messages=10, wait_seconds=0, visibility_timeout=60)
        envelopes = [Envelope.from_json(m.body) for m in got]
        assert [(e.job_id, e.payload) for e in envelopes] == [(receipt["id"], {"message": "oi"})]
        status, error = self.call("POST", "/v1/hello:echo", {})
        assert status == 422
        assert error["error"]["fields"] == [{"field": "message", "message": "must be a string"}]

    def test_the_plugin_appears_in_the_openapi_document(self) -> None:
        status, document = self.call("GET", "/openapi.json")
        assert status == 200
        assert {"/v1/hello", "/v1/hello:echo", "/v1/punches", "/v1/jobs"} <= set(document["paths"])
        assert "HelloEcho" in document["components"]["schemas"]

    def test_broken_plugins_are_named_and_take_nothing_down(self) -> None:
        assert len(self.plugin_errors) == 2, self.plugin_errors
        explodes, clash = sorted(self.plugin_errors)
        named = "the tornado.api plugin 'broken' (tornado_broken_plugin.explodes:endpoints, "
        assert explodes.startswith(named)
        assert "RuntimeError: the hello database driver is not installed" in explodes
        assert "its endpoints are not served" in explodes
        assert "'clash'" in clash and "adds routes already served: /v1/jobs" in clash
        status, receipt = self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "x"}})
        assert status == 202 and receipt["task"] == "demo.echo"  # the core's handler, not the clashing one


def tornado(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(tornado_argv(*args), capture_output=True, text=True, env=env, timeout=60)


def test_the_plugin_command_appears_in_tornado_help_and_runs() -> None:
    listed = tornado("--help")
    assert listed.returncode == 0, listed.stderr
    commands = listed.stdout.split("Commands:")[1]
    assert re.search(r"\n  hello +Greetings from the hello plugin\.", commands)
    assert "ponto" in commands and "worker" in commands
    assert re.search(r"\n  broken +\(broken plugin from tornado-broken-plugin 0\.1\.0\)", commands)
    greeted = tornado("hello", "greet", "--name", "Ana")
    assert (greeted.returncode, greeted.stdout) == (0, "Olá, Ana!\n")


def test_a_broken_plugin_command_fails_with_its_name_and_leaves_the_others_working() -> None:
    broken = tornado("broken", "--anything")
    assert broken.returncode == 1
    named = "Error: the tornado.commands plugin 'broken' (tornado_broken_plugin.explodes:command, "
    assert named in broken.stderr
    assert "from tornado-broken-plugin 0.1.0" in broken.stderr and "Traceback" not in broken.stderr
    assert tornado("hello", "greet", "--name", "Bia").stdout == "Olá, Bia!\n"
