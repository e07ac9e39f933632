"""The NF-e number allocator without a database: argument checks, statuses and the record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from tornado_tasks.nfe.numbering import (
    TRANSITIONS,
    Allocation,
    IllegalTransition,
    NumberingInvalid,
    SeriesExhausted,
    Status,
    allocate_number,
    burned_numbers,
    configure_series,
    find_allocation,
    mark,
)

from tornado_core import NonRetryable


class Untouchable:
    """A connection that fails the test if anything uses it."""

    def cursor(self) -> Any:
        raise AssertionError("the database was touched")


NO_DB = Untouchable()


@pytest.mark.parametrize(
    ("arguments", "fields"),
    [
        ({"cnpj": "11222333000182"}, ["cnpj"]),  # bad check digit
        ({"cnpj": "00000000000000"}, ["cnpj"]),
        ({"cnpj": "52998224725"}, ["cnpj"]),  # a CPF
        ({"cnpj": 11222333000181}, ["cnpj"]),
        ({"model": 57}, ["model"]),
        ({"model": True}, ["model"]),
        ({"model": "55"}, ["model"]),
        ({"series": -1}, ["series"]),
        ({"series": 1000}, ["series"]),
        ({"series": 1.0}, ["series"]),
        ({"job_id": ""}, ["job_id"]),
        ({"job_id": None}, ["job_id"]),
        ({"job_id": "  ", "cnpj": "x", "model": 1, "series": None}, ["job_id", "cnpj", "model", "series"]),
    ],
)
def test_allocate_refuses_bad_arguments_before_touching_the_database(
    arguments: dict[str, Any], fields: list[str]
) -> None:
    call = {"job_id": "job-1", "cnpj": "11.222.333/0001-81", "model": 55, "series": 1, **arguments}
    with pytest.raises(NumberingInvalid) as caught:
        allocate_number(NO_DB, **call)
    assert [p["field"] for p in caught.value.problems] == fields
    assert isinstance(caught.value, NonRetryable)
    assert str(caught.value).startswith("invalid NF-e numbering request: ")


def test_the_other_functions_check_their_arguments_first() -> None:
    with pytest.raises(NumberingInvalid, match="first_number: must be an integer from 1 to 999999999"):
        configure_series(NO_DB, cnpj="11222333000181", model=65, series=0, first_number=0)
    with pytest.raises(NumberingInvalid, match="series"):
        burned_numbers(NO_DB, "11222333000181", 55, 1000)
    with pytest.raises(NumberingInvalid, match="job_id"):
        find_allocation(NO_DB, "")
    with pytest.raises(NumberingInvalid, match="status: must be one of allocated, authorized"):
        mark(NO_DB, "job-1", "inutilizado")
    with pytest.raises(NumberingInvalid, match="status"):
        mark(NO_DB, "job-1", ["voided"])  # type: ignore[arg-type]


def test_statuses_move_forward_only() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert TRANSITIONS[Status.ALLOCATED] == {Status.AUTHORIZED, Status.REJECTED_BURNED, Status.VOIDED}
    assert TRANSITIONS[Status.REJECTED_BURNED] == {Status.VOIDED}
    assert not TRANSITIONS[Status.AUTHORIZED] and not TRANSITIONS[Status.VOIDED]
    assert all(Status.ALLOCATED not in targets for targets in TRANSITIONS.values())


def test_errors_name_the_series_and_the_way_out() -> None:
    now = datetime.now(UTC)
    allocation = Allocation(
        job_id="j", cnpj="11222333000181", model=65, series=2, number=9, random_code=1,
        status=Status.AUTHORIZED, allocated_at=now, updated_at=now,
    )  # fmt: skip
    with pytest.raises(dataclasses.FrozenInstanceError):
        allocation.number = 10  # type: ignore[misc]
    assert str(IllegalTransition(allocation, Status.VOIDED)) == (
        "number 9 of series 2 of model 65 of CNPJ 11222333000181 (job 'j') is authorized and cannot become "
        "voided; authorized may become: nothing (final status)"
    )
    assert str(SeriesExhausted("11222333000181", 55, 0)) == (
        "series 0 of model 55 of CNPJ 11222333000181 is exhausted: every number up to 999,999,999 has been "
        "allocated; emit in another series"
    )
