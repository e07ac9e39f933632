"""The API's ``GET /metrics``: requests by route, accepted jobs, scrape-time gauges, token, no drift."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import tornado_tasks.demo.handlers as demo
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tornado.testing import AsyncHTTPTestCase
from tornado_tasks.nfe.api import CERTIFICATE_EXPIRY, nfe_endpoints
from tornado_tasks.nfe.certificate_store import store_certificate
from tornado_tasks.nfe.certificates import TestAuthority

from tornado_core.naming import queue_spec
from tornado_core.observability.metrics import ApiMetrics, WorkerMetrics
from tornado_core.observability.metrics_scrape import GaugeFamily, ScrapedGauges
from tornado_core.ports.insights import QueueSnapshot
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services
from tornado_core.web import ApiApplication, make_app

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """``{(sample name, sorted labels): value}`` of a text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


class MetricsApiCase(AsyncHTTPTestCase):
    """An API on in-memory services with the demo tasks and one tenant."""

    token: str | None = None

    def get_app(self) -> ApiApplication:
        registry = TaskRegistry()
        registry.register_module(demo)
        settings = Settings(database_url="memory://", secret_key="test-secret", metrics_token=self.token)
        self.services = memory_services(registry, settings=settings)
        for spec in registry:
            self.services.queue.ensure_queue(queue_spec(settings.queue_prefix, spec))
        self.tenant_token = new_token()
        self.services.tenants.create("acme", hash_token(self.tenant_token))
        self.executor = ThreadPoolExecutor(4)
        self.app = make_app(self.services, executor=self.executor, plugins=[])
        return self.app

    def tearDown(self) -> None:
        super().tearDown()
        self.executor.shutdown()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.tenant_token}", "Content-Type": "application/json"}
        response = self.fetch(path, method=method, body=data, headers=headers, allow_nonstandard_methods=True)
        return json.loads(response.body) if response.body else None

    def scrape(self, token: str | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.fetch("/metrics", headers=headers)
        return response.code, response.body.decode()


class TestApiMetrics(MetricsApiCase):
    def test_requests_are_counted_by_route_never_by_uri(self) -> None:
        ids = [
            self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": n}})["id"]
            for n in "ab"
        ]
        for job_id in ids:
            self.call("GET", f"/v1/jobs/{job_id}")
        self.fetch("/healthz", method="BREW", allow_nonstandard_methods=True)
        status, text = self.scrape()
        assert status == 200
        samples = parse(text)
        get_job = {"route": "JobHandler", "method": "GET", "status": "200"}
        assert sample(samples, "tornado_http_requests_total", **get_job) == 2
        assert (
            sample(samples, "tornado_http_requests_total", route="JobsHandler", method="POST", status="202")
            == 2
        )
        assert sample(
            samples, "tornado_http_requests_total", route="HealthHandler", method="OTHER", status="405"
        )
        assert not any(job_id in text for job_id in ids)  # no raw URI in any label

    def test_accepted_jobs_are_counted_and_refused_ones_are_not(self) -> None:
        self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": "one"}})
        items = [{"task": "demo.echo", "payload": {"message": "two"}}, {"task": "demo.echo", "payload": {}}]
        self.call("POST", "/v1/jobs:batch", {"jobs": items})
        samples = parse(self.scrape()[1])
        accepted = {"task": "demo.echo", "version": demo.echo.version, "tenant": "acme"}
        assert sample(samples, "tornado_jobs_submitted_total", **accepted) == 2

    def test_the_store_gauge_shows_the_job_store_counts(self) -> None:
        for n in range(3):
            self.call("POST", "/v1/jobs", {"task": "demo.echo", "payload": {"message": str(n)}})
        samples = parse(self.scrape()[1])
        expected = {(c.task, c.version, c.status): c.count for c in self.services.jobs.count_jobs()}
        assert expected == {("demo.echo", demo.echo.version, "queued"): 3}
        for (task, version, status), count in expected.items():
            assert sample(samples, "tornado_store_jobs", task=task, version=version, status=status) == count
        assert sample(samples, "tornado_metrics_source_up", source="store") == 1

    def test_metrics_are_open_without_a_token_setting(self) -> None:
        assert self.scrape()[0] == 200


class TestApiMetricsWithToken(MetricsApiCase):
    token = "scrape-secret"

    def test_a_token_setting_closes_the_endpoint_to_others(self) -> None:
        assert self.scrape()[0] == 401
        assert self.scrape("not-it")[0] == 401
        assert self.scrape(self.tenant_token)[0] == 401  # a tenant's token is not the metrics token
        assert self.scrape("scrape-secret")[0] == 200


def test_queue_gauges_come_from_the_snapshots() -> None:
    snapshot = QueueSnapshot(
        task="demo.echo", version="1.0.0", queue="q", visible=4, in_flight=2, delayed=1, dead_letters=3,
        oldest_age=12.5,
    )  # fmt: skip
    empty = QueueSnapshot(
        task="demo.fail", version="1.0.0", queue="f", visible=0, in_flight=0, delayed=0, dead_letters=0,
        oldest_age=None,
    )  # fmt: skip
    metrics = ApiMetrics(queues=lambda: [snapshot, empty])
    samples = parse(generate_latest(metrics.registry).decode())
    version = {"task": "demo.echo", "version": "1.0.0"}
    states = {
        s: sample(samples, "tornado_queue_messages", **version, state=s)
        for s in ("visible", "in_flight", "delayed")
    }
    assert states == {"visible": 4, "in_flight": 2, "delayed": 1}
    assert sample(samples, "tornado_queue_dead_letters", **version) == 3
    assert sample(samples, "tornado_queue_oldest_age_seconds", **version) == 12.5
    assert sample(samples, "tornado_queue_oldest_age_seconds", task="demo.fail", version="1.0.0") is None


def test_a_source_is_read_once_per_cache_period_and_a_failed_read_shows_nothing_stale() -> None:
    now, reads = [0.0], []

    def read() -> list[tuple[str, tuple[str, ...], float]]:
        reads.append(now[0])
        if len(reads) == 2:
            raise ConnectionError("database down")
        return [("g", ("x",), float(len(reads)))]

    gauges = ScrapedGauges(clock=lambda: now[0])
    gauges.add("s", [GaugeFamily("g", "a gauge", ("k",))], read, cache_seconds=5)
    seen = []
    for at in (0.0, 4.9, 5.0, 6.0, 10.0):
        now[0] = at
        seen.append({(s.name, s.value) for family in gauges.collect() for s in family.samples})
    assert reads == [0.0, 5.0, 10.0]
    up, down = ("tornado_metrics_source_up", 1.0), ("tornado_metrics_source_up", 0.0)
    assert seen == [{("g", 1.0), up}, {("g", 1.0), up}, {down}, {down}, {("g", 3.0), up}]
    with pytest.raises(ValueError, match="already registered: g"):
        gauges.add("again", [GaugeFamily("g", "the same name", ())], read, cache_seconds=5)


def metric_names(registries: list[CollectorRegistry]) -> set[str]:
    """Every sample name the registries can expose (``_total`` of counters, ``_bucket`` of histograms...)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {
        family.name + suffix
        for registry in registries
        for family in registry.collect()
        for suffix in suffixes[family.type]
    }


@pytest.fixture
def master_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    key = os.urandom(32)
    monkeypatch.setenv("TORNADO_NFE_MASTER_KEY", base64.b64encode(key).decode())
    yield key


def nfe_api() -> ApiApplication:
    services = memory_services(TaskRegistry())
    return make_app(services, executor=ThreadPoolExecutor(1), plugins=[])


def test_the_nfe_package_exposes_each_certificates_expiry(master_key: bytes) -> None:
    app = nfe_api()
    pkcs12 = TestAuthority.create().issue_a1("11222333000181", "EMPRESA", password="pw", days=20)
    certificate = store_certificate(app.api.services.objects, master_key, "acme", pkcs12, "pw")
    nfe_endpoints(app.api)
    samples = parse(generate_latest(app.api.metrics.registry).decode())
    labels = {"tenant": "acme", "cnpj": "11222333000181", "subject": certificate.subject}
    assert sample(samples, CERTIFICATE_EXPIRY, **labels) == certificate.not_after.timestamp()
    app.api.executor.shutdown()


def test_every_metric_the_dashboard_and_the_alerts_use_is_one_the_code_registers(master_key: bytes) -> None:
    app = nfe_api()
    nfe_endpoints(app.api)
    api = ApiMetrics(queues=list, job_counts=list)
    known = metric_names([WorkerMetrics("t", "1").registry, api.registry, app.api.metrics.registry])
    app.api.executor.shutdown()
    dashboard = json.loads((ROOT / "deploy/grafana/tornado-dashboard.json").read_text())
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    used = {name for expr in exprs for name in re.findall(r"\btornado_[a-z_]+", expr)}
    assert len(exprs) > 20 and len(used) > 15
    assert used - known == set()
    documented = set(re.findall(r"`(tornado_[a-z_]+)`", (ROOT / "docs/metrics.md").read_text()))
    assert {re.sub(r"_(bucket|count|sum)$", "", name) for name in used} - documented == set()
