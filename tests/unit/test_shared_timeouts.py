"""Shared timeouts: asyncio.timeout's behaviour, with one timer for all deadlines of a tick."""

from __future__ import annotations

import asyncio

import pytest

from tornado_core.web.shared_timeouts import SharedTimeouts


def test_work_done_before_its_deadline_returns_its_value_and_leaves_nothing_armed() -> None:
    async def run() -> tuple[str, int]:
        timeouts = SharedTimeouts()
        async with timeouts.at(asyncio.get_running_loop().time() + 10):
            value = await asyncio.sleep(0, "done")
        return value, len(timeouts)

    assert asyncio.run(run()) == ("done", 0)


def test_work_past_its_deadline_raises_timeout_error_no_earlier_than_the_deadline() -> None:
    async def run() -> tuple[float, float]:
        timeouts, loop = SharedTimeouts(), asyncio.get_running_loop()
        deadline = loop.time() + 0.2
        with pytest.raises(TimeoutError):
            async with timeouts.at(deadline):
                await asyncio.Event().wait()  # never set
        return deadline, loop.time()

    deadline, ended = asyncio.run(run())
    assert ended >= deadline


def test_a_passed_deadline_times_out_at_the_first_wait() -> None:
    async def run() -> None:
        timeouts = SharedTimeouts()
        async with timeouts.at(asyncio.get_running_loop().time() - 1):
            await asyncio.Event().wait()  # never set: only the timeout ends it

    with pytest.raises(TimeoutError):
        asyncio.run(run())


def test_many_blocks_of_one_tick_all_time_out_and_nothing_stays_armed() -> None:
    async def run() -> tuple[list[BaseException | None], int]:
        timeouts, loop = SharedTimeouts(), asyncio.get_running_loop()
        deadline = loop.time() + 0.1

        async def request() -> None:
            async with timeouts.at(deadline):
                await asyncio.Event().wait()

        outcomes = await asyncio.gather(*(request() for _ in range(100)), return_exceptions=True)
        return outcomes, len(timeouts)

    outcomes, armed = asyncio.run(run())
    assert all(isinstance(outcome, TimeoutError) for outcome in outcomes) and armed == 0


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def run() -> None:
        timeouts = SharedTimeouts()
        started = asyncio.Event()

        async def request() -> None:
            async with timeouts.at(asyncio.get_running_loop().time() + 10):
                started.set()
                await asyncio.Event().wait()

        task = asyncio.ensure_future(request())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(timeouts) == 0

    asyncio.run(run())
