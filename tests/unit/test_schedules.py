"""Periodic schedules: cron occurrences in a time zone, the missed policy, firing, and /v1/schedules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from tests.unit.test_web_api import ApiTestCase
from tornado_core import Periodic, TaskContext, TaskRegistry, TaskSpec, task
from tornado_core.adapters.memory.schedules import MemorySchedules
from tornado_core.errors import ScheduleInvalid
from tornado_core.ports.schedules import MissedPolicy, Schedule
from tornado_core.producer.submission import Submitter
from tornado_core.scheduling.book import ScheduleBook
from tornado_core.scheduling.declared import DeclaredSchedules
from tornado_core.scheduling.occurrences import (
    LATE_GRACE,
    MAX_CATCH_UP,
    check_definition,
    due_occurrences,
    next_occurrence,
)
from tornado_core.scheduling.scheduler import Scheduler
from tornado_core.services import Services
from tornado_core.tokens import hash_token, new_token
from tornado_core.toolchain.testing import memory_services

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def schedule(
    cron: str = "*/5 * * * *", *, missed: MissedPolicy = MissedPolicy.SKIP, at: datetime = T0
) -> Schedule:
    return Schedule(
        tenant="acme", name="nightly", task="demo.echo", payload={"message": "tick"}, cron=cron,
        timezone="UTC", missed=missed, next_run_at=at,
    )  # fmt: skip


# --- occurrences --------------------------------------------------------------------------------


def test_the_next_occurrence_is_counted_in_the_schedules_time_zone() -> None:
    # 02:00 in São Paulo (UTC-3, no daylight saving since 2019) is 05:00 UTC.
    after = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert next_occurrence("0 2 * * *", "America/Sao_Paulo", after) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def test_a_six_field_expression_counts_seconds() -> None:
    assert next_occurrence("*/2 * * * * *", "UTC", T0) == T0 + timedelta(seconds=2)


@pytest.mark.parametrize(
    ("name", "cron", "timezone", "field"),
    [
        ("nightly", "61 * * * *", "UTC", "cron"),
        ("nightly", "* * *", "UTC", "cron"),
        ("nightly", "0 0 30 2 *", "UTC", "cron"),  # 30 February never comes
        ("nightly", "0 2 * * *", "Mars/Olympus", "timezone"),
        ("nightly", "0 2 * * *", "../etc/passwd", "timezone"),
        ("Nightly Export", "0 2 * * *", "UTC", "name"),
        ("", "0 2 * * *", "UTC", "name"),
    ],
)
def test_a_bad_definition_names_its_field(name: str, cron: str, timezone: str, field: str) -> None:
    with pytest.raises(ScheduleInvalid) as caught:
        check_definition(name, cron, timezone)
    assert caught.value.field == field


def test_skip_runs_an_occurrence_a_little_late_but_not_one_missed_long_ago() -> None:
    late = due_occurrences(schedule(), T0 + timedelta(seconds=LATE_GRACE / 2))
    assert (late.run, late.next_run_at) == ([T0], T0 + timedelta(minutes=5))
    after_downtime = due_occurrences(schedule(), T0 + timedelta(hours=1, seconds=LATE_GRACE + 1))
    assert after_downtime.run == []
    assert after_downtime.next_run_at == T0 + timedelta(hours=1, minutes=5)


def test_catch_up_runs_every_missed_occurrence_oldest_first() -> None:
    due = due_occurrences(schedule(missed=MissedPolicy.CATCH_UP), T0 + timedelta(minutes=12))
    assert due.run == [T0, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    assert due.next_run_at == T0 + timedelta(minutes=15)


def test_catch_up_is_bounded_per_firing_and_resumes_where_it_stopped() -> None:
    every_second = schedule("* * * * * *", missed=MissedPolicy.CATCH_UP)
    first = due_occurrences(every_second, T0 + timedelta(hours=1))
    assert len(first.run) == MAX_CATCH_UP and first.next_run_at == T0 + timedelta(seconds=MAX_CATCH_UP)


# --- the API and the scheduler on memory services ----------------------------------------------


def tick(cron: str = "*/5 * * * *") -> dict[str, Any]:
    return {"name": "nightly", "task": "demo.echo", "payload": {"message": "tick"}, "cron": cron}


class TestSchedulesApi(ApiTestCase):
    def scheduler(self, now: datetime) -> Scheduler:
        return Scheduler(self.services, self.schedules, clock=lambda: now)

    def jobs_of(self, tenant: str = "acme") -> list[Any]:
        return self.store.list(tenant=tenant, limit=100).jobs

    def test_create_list_get_and_remove(self) -> None:
        status, created, _ = self.call("POST", "/v1/schedules", tick())
        assert status == 201
        assert created["timezone"] == "UTC" and created["missed"] == "skip" and not created["paused"]
        assert datetime.fromisoformat(created["next_run_at"]) > datetime.now(UTC)
        assert [s["name"] for s in self.call("GET", "/v1/schedules")[1]["schedules"]] == ["nightly"]
        assert self.call("GET", "/v1/schedules", token="b")[1]["schedules"] == []  # another tenant's
        assert self.call("GET", "/v1/schedules/nightly", token="b")[0] == 404
        assert self.call("DELETE", "/v1/schedules/nightly")[0] == 204
        assert self.call("GET", "/v1/schedules/nightly")[0] == 404

    def test_a_taken_name_is_409_and_put_replaces_it(self) -> None:
        self.call("POST", "/v1/schedules", tick())
        status, answer, _ = self.call("POST", "/v1/schedules", tick("0 2 * * *"))
        assert (status, answer["error"]["code"]) == (409, "schedule_exists")
        body = {k: v for k, v in tick("0 2 * * *").items() if k != "name"}
        status, replaced, _ = self.call(
            "PUT", "/v1/schedules/nightly", {**body, "timezone": "America/Sao_Paulo"}
        )
        assert (status, replaced["cron"], replaced["timezone"]) == (200, "0 2 * * *", "America/Sao_Paulo")

    def test_bad_input_names_the_field_and_stores_nothing(self) -> None:
        cases = [
            ({**tick(), "cron": "every day"}, "cron"),
            ({**tick(), "timezone": "Mars/Olympus"}, "timezone"),
            ({**tick(), "name": "Not A Name"}, "name"),
            ({**tick(), "missed": "sometimes"}, "missed"),
            ({**tick(), "missed": {}}, "missed"),
            ({**tick(), "timezone": None}, "timezone"),
            ({**tick(), "paused": "yes"}, "paused"),
            ({**tick(), "colour": "red"}, "colour"),
            ({**tick(), "task": "no.such.task"}, "task"),
            ({**tick(), "payload": {"message": 5}}, "payload.message"),
            ({k: v for k, v in tick().items() if k != "cron"}, "cron"),
        ]
        for body, field in cases:
            status, answer, _ = self.call("POST", "/v1/schedules", body)
            assert status == 422, (body, answer)
            assert field in [f["field"] for f in answer["error"]["fields"]], (body, answer)
        mismatch = self.call("PUT", "/v1/schedules/nightly", tick())
        assert mismatch[0] == 200  # the body's name matches the URL's
        assert self.call("PUT", "/v1/schedules/other", tick())[0] == 422
        assert [s.name for s in self.schedules.list("acme")] == ["nightly"]

    def test_each_due_occurrence_queues_one_job_whatever_the_number_of_passes(self) -> None:
        created = self.call("POST", "/v1/schedules", tick())[1]
        first = datetime.fromisoformat(created["next_run_at"])
        assert self.scheduler(first - timedelta(seconds=1)).tick().fired == 0
        for _ in range(3):
            self.scheduler(first + timedelta(seconds=1)).tick()
        (job,) = self.jobs_of()
        assert job.task == "demo.echo" and job.status == "queued"
        shown = self.call("GET", "/v1/schedules/nightly")[1]
        assert shown["last_job_id"] == job.job_id and shown["last_run_at"] == first.isoformat()
        assert datetime.fromisoformat(shown["next_run_at"]) == first + timedelta(minutes=5)

    def test_an_occurrence_fired_again_after_a_lost_commit_finds_its_job(self) -> None:
        self.call("POST", "/v1/schedules", tick())
        stored = self.schedules.get("acme", "nightly")
        assert stored is not None
        when = stored.next_run_at + timedelta(seconds=1)
        self.scheduler(when).tick()
        self.schedules.save(stored, replace=True)  # as if the first firing's commit never happened
        self.scheduler(when).tick()
        assert len(self.jobs_of()) == 1

    def test_a_paused_schedule_queues_nothing_and_resumes_from_its_next_occurrence(self) -> None:
        self.call("POST", "/v1/schedules", tick("* * * * * *"))
        paused = self.call("POST", "/v1/schedules/nightly:pause")[1]
        assert paused["paused"] is True
        self.scheduler(datetime.now(UTC) + timedelta(minutes=10)).tick()
        assert self.jobs_of() == []
        resumed = self.call("POST", "/v1/schedules/nightly:resume")[1]
        assert resumed["paused"] is False
        assert datetime.fromisoformat(resumed["next_run_at"]) > datetime.now(UTC) - timedelta(seconds=1)
        assert self.call("POST", "/v1/schedules/nope:pause")[0] == 404


# --- schedules declared on a task ---------------------------------------------------------------


class Nothing(BaseModel):
    label: str = "nightly"


@task(name="acme.nightly", payload=Nothing, version="1.0.0", schedules=[Periodic("run", cron="0 2 * * *")])
def nightly(ctx: TaskContext, payload: Nothing) -> None:
    """A task with a declared schedule."""


@pytest.fixture
def services() -> Services:
    """Memory services knowing acme.nightly, with two tenants."""
    built = memory_services([nightly])
    for tenant in ("acme", "globex"):
        built.tenants.create(tenant, hash_token(new_token()))
    return built


def declarations(services: Services, spec: TaskSpec) -> DeclaredSchedules:
    """The declared schedules of ``spec`` (as a scheduler whose code has that version would see)."""
    assert isinstance(services.schedules, MemorySchedules)
    book = ScheduleBook(services.schedules, Submitter.for_services(services))
    return DeclaredSchedules(TaskRegistry([spec]), services.tenants, services.schedules, book)


def test_a_declared_schedule_is_installed_for_every_tenant_once(services: Services) -> None:
    declared = declarations(services, nightly)
    assert declared.sync() == 2 and declared.sync() == 0
    assert services.schedules is not None
    assert [(s.tenant, s.name, s.cron) for s in services.schedules.list()] == [
        ("acme", "acme.nightly.run", "0 2 * * *"), ("globex", "acme.nightly.run", "0 2 * * *"),
    ]  # fmt: skip


def test_a_changed_declaration_replaces_the_schedule_but_keeps_an_operators_pause(services: Services) -> None:
    schedules = services.schedules
    assert schedules is not None
    declarations(services, nightly).sync()
    stored = schedules.get("acme", "acme.nightly.run")
    assert stored is not None
    schedules.set_paused("acme", "acme.nightly.run", paused=True, next_run_at=stored.next_run_at)
    changed = replace(nightly, schedules=(Periodic("run", cron="30 3 * * *", timezone="America/Sao_Paulo"),))
    assert declarations(services, changed).sync() == 2
    acme = schedules.get("acme", "acme.nightly.run")
    assert acme is not None
    assert (acme.cron, acme.timezone, acme.paused) == ("30 3 * * *", "America/Sao_Paulo", True)


def test_a_bad_declaration_is_refused_when_declared_or_logged_when_installed(services: Services) -> None:
    with pytest.raises(ValueError):
        Periodic("run", cron="0 2 * * *", missed="sometimes")
    broken = replace(nightly, schedules=(Periodic("run", cron="61 * * * *"),))
    assert declarations(services, broken).sync() == 0
    assert services.schedules is not None and services.schedules.list() == []
