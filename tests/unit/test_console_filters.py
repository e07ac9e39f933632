"""The console's job filter: what the search form and the bulk actions accept, refuse, and write down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tornado_core.console.filters import JobFilter
from tornado_core.errors import FilterInvalid
from tornado_core.ports.jobs import JobStatus


def test_every_field_is_read_from_its_query_name() -> None:
    job_filter = JobFilter.from_query(
        {
            "task": "demo.fail", "version": "1.2.0", "tenant": "acme", "status": "dead",
            "from": "2026-11-30T10:00:00Z", "to": "2026-12-01T08:30:00-03:00", "key": "order-17",
            "error": "timeout",
        }
    )  # fmt: skip
    assert job_filter == JobFilter(
        task="demo.fail",
        version="1.2.0",
        tenant="acme",
        status=JobStatus.DEAD,
        created_after=datetime(2026, 11, 30, 10, tzinfo=UTC),
        created_before=datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
        idempotency_key="order-17",
        error_text="timeout",
    )


def test_empty_values_and_other_names_are_ignored() -> None:
    job_filter = JobFilter.from_query({"task": "  ", "status": "", "cursor": "abc", "limit": "50"})
    assert job_filter == JobFilter()
    assert job_filter.is_empty
    assert job_filter.describe() == ""


def test_a_date_from_starts_at_midnight_and_a_date_to_covers_its_whole_day() -> None:
    job_filter = JobFilter.from_query({"from": "2026-11-30", "to": "2026-11-30"})
    assert job_filter.created_after == datetime(2026, 11, 30, tzinfo=UTC)
    assert job_filter.created_before == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_date_time_without_a_zone_is_utc() -> None:
    job_filter = JobFilter.from_query({"from": "2026-11-30 10:15"})
    assert job_filter.created_after == datetime(2026, 11, 30, 10, 15, tzinfo=UTC)


def test_the_status_is_read_in_any_case() -> None:
    assert JobFilter.from_query({"status": "DEAD"}).status is JobStatus.DEAD


@pytest.mark.parametrize(
    ("args", "field", "says"),
    [
        ({"status": "exploded"}, "status", "one of scheduled, queued"),
        ({"from": "yesterday"}, "from", "ISO 8601"),
        ({"to": "2026-13-01"}, "to", "ISO 8601"),
        ({"from": "2026-11-30T10:00Z", "to": "2026-11-30T09:00Z"}, "to", "later than 'from'"),
        ({"from": "2026-11-30", "to": "2026-11-29"}, "to", "later than 'from'"),
        ({"task": "x" * 201}, "task", "at most 200 characters"),
        ({"error": "bad\x00byte"}, "error", "control characters"),
        ({"key": "k" * 201}, "key", "at most 200 characters"),
    ],
)
def test_malformed_values_are_refused_naming_the_field(args: dict[str, str], field: str, says: str) -> None:
    with pytest.raises(FilterInvalid) as caught:
        JobFilter.from_query(args)
    assert caught.value.field == field
    assert says in str(caught.value)
    assert not str(caught.value).startswith(field + ":")  # the page shows the field beside the message


def test_the_query_string_and_the_stored_json_give_the_same_filter_back() -> None:
    job_filter = JobFilter.from_query(
        {"task": "demo.fail", "tenant": "acme", "status": "queued", "from": "2026-11-30", "error": "50%_off"}
    )
    assert JobFilter.from_query(job_filter.to_query()) == job_filter
    assert JobFilter.from_json(job_filter.to_json()) == job_filter
    assert job_filter.to_query() == {
        "task": "demo.fail",
        "tenant": "acme",
        "status": "queued",
        "from": "2026-11-30T00:00:00+00:00",
        "error": "50%_off",
    }


def test_stored_json_with_an_unknown_or_malformed_field_is_refused() -> None:
    with pytest.raises(FilterInvalid) as unknown:
        JobFilter.from_json({"task": "demo.fail", "colour": "red"})
    assert unknown.value.field == "colour"
    with pytest.raises(FilterInvalid) as malformed:
        JobFilter.from_json({"created_after": "soon"})
    assert malformed.value.field == "created_after"


def test_the_description_names_each_field_set_and_quotes_the_error_text() -> None:
    job_filter = JobFilter.from_query(
        {
            "task": "demo.fail",
            "status": "dead",
            "error": "timeout",
            "tenant": "acme corp",
            "from": "2026-11-30",
        }
    )
    assert job_filter.describe() == (
        "task=demo.fail tenant='acme corp' status=dead from=2026-11-30T00:00:00Z error~'timeout'"
    )
    assert JobFilter(task="demo.fail", status=JobStatus.DEAD, error_text="timeout").describe() == (
        "task=demo.fail status=dead error~'timeout'"
    )
