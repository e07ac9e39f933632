"""Version routing: deterministic ramp buckets, percent distribution, tenant pins, table edits."""

from __future__ import annotations

import uuid

import pytest

from tornado_core.ports.routes import RouteTable
from tornado_core.routing import Router, bucket, choose_version


def ids(count: int) -> list[str]:
    return [f"job-{uuid.UUID(int=i)}" for i in range(count)]


def test_the_bucket_of_a_job_id_never_changes() -> None:
    assert [bucket(job) for job in ids(50)] == [bucket(job) for job in ids(50)]
    assert all(0 <= bucket(job) < 100 for job in ids(1000))
    assert bucket("01HXYZ") == 17  # fixed forever: a re-submitted job id lands where it did before


def test_the_same_job_always_goes_to_the_same_version() -> None:
    route = RouteTable(task="nfe.emit", current="1.0.0", ramping="2.0.0", ramp_percent=30)
    first = [choose_version(route, "acme", job) for job in ids(200)]
    again = [choose_version(route, "acme", job) for job in ids(200)]
    assert first == again


@pytest.mark.parametrize("percent", [0, 1, 10, 50, 90, 100])
def test_the_ramping_version_gets_its_percent_of_jobs(percent: int) -> None:
    route = RouteTable(task="nfe.emit", current="1.0.0", ramping="2.0.0", ramp_percent=percent)
    jobs = ids(20_000)
    share = 100 * sum(choose_version(route, "acme", job) == "2.0.0" for job in jobs) / len(jobs)
    assert abs(share - percent) < 1.5, share


def test_raising_the_percent_keeps_jobs_already_ramped_on_the_ramping_version() -> None:
    low = RouteTable(task="t.x", current="1", ramping="2", ramp_percent=10)
    high = low.ramped("2", 50)
    ramped_low = {job for job in ids(2000) if choose_version(low, "a", job) == "2"}
    assert all(choose_version(high, "a", job) == "2" for job in ramped_low)


def test_tenant_pins_win_over_ramp_and_current() -> None:
    route = RouteTable(task="t.x", current="1", ramping="2", ramp_percent=100, pins={"acme": "3"})
    assert {choose_version(route, "acme", job) for job in ids(100)} == {"3"}
    assert {choose_version(route, "other", job) for job in ids(100)} == {"2"}


def test_promoting_ends_the_ramp_and_drops_pins_made_redundant() -> None:
    route = RouteTable(task="t.x", current="1", ramping="2", ramp_percent=10, pins={"a": "2", "b": "1"})
    promoted = route.promoted("2")
    assert (promoted.current, promoted.ramping, promoted.ramp_percent) == ("2", None, 0)
    assert dict(promoted.pins) == {"b": "1"}
    assert promoted.routed_versions() == {"1", "2"}
    assert promoted.role_of("1") == "pinned: b"
    assert promoted.without("1").routed_versions() == {"2"}


def test_a_zero_ramp_is_no_ramp_and_bad_tables_are_refused() -> None:
    route = RouteTable(task="t.x", current="1").ramped("2", 0)
    assert route.ramping is None and route.routed_versions() == {"1"}
    with pytest.raises(ValueError, match=r"0\.\.100"):
        RouteTable(task="t.x", current="1", ramping="2", ramp_percent=101)
    with pytest.raises(ValueError, match="current and ramping"):
        RouteTable(task="t.x", current="1", ramping="1", ramp_percent=5)
    with pytest.raises(TypeError):
        route.pins["x"] = "2"  # type: ignore[index]


def test_router_uses_the_table_or_the_default_for_tasks_without_one() -> None:
    tables = {"t.x": RouteTable(task="t.x", current="2")}
    router = Router(tables.get, lambda task: "newest")
    assert router("t.x", "acme", "job-1") == "2"
    assert router("t.other", "acme", "job-1") == "newest"


@pytest.mark.parametrize(
    "table",
    [
        RouteTable(task="t.x", current="1"),
        RouteTable(task="t.x", current="1", ramping="2", ramp_percent=30),
        RouteTable(task="t.x", current="1", ramping="2", ramp_percent=30, pins={"acme": "3"}),
        RouteTable(task="t.x", current="1", pins={"globex": "2"}),
    ],
)
def test_a_fixed_version_is_the_version_of_every_job_or_none_when_a_ramp_splits_them(
    table: RouteTable,
) -> None:
    router = Router({"t.x": table}.get, lambda task: "newest")
    for tenant in ("acme", "globex", "initech"):
        versions = {router("t.x", tenant, job_id) for job_id in ids(300)}
        fixed = router.fixed_version("t.x", tenant)
        if fixed is None:
            assert len(versions) == 2  # the ramp splits this tenant's jobs
        else:
            assert versions == {fixed}
    assert router.fixed_version("t.other", "acme") == "newest"
