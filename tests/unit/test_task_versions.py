"""Versions known by contract only: JSON round trip, validation like pydantic's, runtimes by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tornado_core import TaskContext, TaskSpec, bootstrap, task
from tornado_core.bootstrap import build_runtime
from tornado_core.errors import PayloadInvalid, ReleaseError, RuntimeFailure, TaskNotFound, VersionNotFound
from tornado_core.naming import contract_queue_spec
from tornado_core.ports.versions import TaskVersion
from tornado_core.producer.submission import Submitter
from tornado_core.registry import TaskRegistry
from tornado_core.settings import Settings
from tornado_core.toolchain.testing import memory_services
from tornado_core.versions import contract_of


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str
    lines: list[Line]


def declare(version: str) -> TaskSpec:
    @task(name="erp.order", payload=Order, version=version, visibility_timeout=7, timeout=11)
    def handler(ctx: TaskContext, payload: Order) -> None:
        return None

    return handler


def errors(check: object, payload: object) -> list[dict[str, str]]:
    with pytest.raises(PayloadInvalid) as caught:
        check(payload)  # type: ignore[operator]
    return caught.value.errors


def test_a_contract_travels_as_json_and_builds_the_same_queue_spec() -> None:
    contract = contract_of(declare("2.1.0"))
    assert TaskVersion.from_json(contract.to_json()) == contract
    spec = contract_queue_spec("tornado", contract)
    assert (spec.name, spec.dead_letter_name) == ("tornado-erp-order-v2_1_0", "tornado-erp-order-v2_1_0-dlq")
    assert (spec.max_receive_count, spec.visibility_timeout) == (5, 7)
    with pytest.raises(ValueError, match="not a task version description"):
        TaskVersion.from_json({"task": "x"})


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"customer": "acme", "lines": [{"sku": "a", "qty": 1}, {"qty": 2}]},
        {"customer": "acme", "lines": [], "discount": 3},
        {"customer": "acme", "lines": "none"},
    ],
)
def test_schema_errors_name_the_same_fields_as_pydantic(payload: dict[str, object]) -> None:
    spec = declare("1.0.0")
    by_schema = errors(contract_of(spec).validate, payload)
    by_model = errors(spec.parse_payload, payload)
    assert sorted(e["field"] for e in by_schema) == sorted(e["field"] for e in by_model)


def test_the_submitter_accepts_versions_it_has_no_code_for_through_the_catalog() -> None:
    contract = contract_of(declare("3.0.0"))

    class Catalog:
        def task_version(self, task: str, version: str) -> TaskVersion | None:
            return contract if (task, version) == ("erp.order", "3.0.0") else None

        def version_names(self, task: str) -> list[str]:
            return ["3.0.0"] if task == "erp.order" else []

    services = memory_services(TaskRegistry())
    submitter = Submitter.for_services(services, catalog=Catalog())
    prepared = submitter.prepare(task="erp.order", tenant="acme", payload={"customer": "a", "lines": []})
    assert (prepared.envelope.version, prepared.queue) == ("3.0.0", "tornado-erp-order-v3_0_0")
    assert errors(lambda p: submitter.prepare(task="erp.order", tenant="acme", payload=p), {"lines": []}) == [
        {"field": "customer", "message": "Field required"}
    ]
    with pytest.raises(VersionNotFound):
        submitter.prepare(task="erp.order", tenant="acme", payload={}, version="9")
    with pytest.raises(TaskNotFound):
        submitter.prepare(task="erp.none", tenant="acme", payload={})


def test_runtimes_are_picked_by_name_and_a_missing_one_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(database_url="postgresql://nowhere/x", secret_key="k")
    assert build_runtime("process", settings, state_dir=tmp_path).name == "process"
    with pytest.raises(ReleaseError, match="unknown runtime 'k8s'"):
        build_runtime("k8s", settings, state_dir=tmp_path)
    monkeypatch.setitem(
        bootstrap.RUNTIMES, "docker", ("tornado_core.adapters.no_such_runtime", "DockerRuntime")
    )
    with pytest.raises(RuntimeFailure, match="runtime 'docker' is not available in this installation"):
        build_runtime("docker", settings, state_dir=tmp_path)
