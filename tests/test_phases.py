"""The bound that long live tests put on their run: a stuck run says where it was."""

import asyncio

import pytest

from tests.helpers import Phases


async def test_a_run_past_its_bound_fails_naming_its_phase_and_what_it_waited_for():
    phases = Phases()

    async def wait_for_a_pong_that_never_comes() -> None:
        await asyncio.Event().wait()

    with pytest.raises(AssertionError) as failure:
        async with phases.bounded(0.3):
            phases("start")
            await asyncio.sleep(0)
            phases("heal")
            await wait_for_a_pong_that_never_comes()
    message = str(failure.value)
    assert message.startswith("not done within 0.3 s; phases: start at 0.0 s, heal at 0.0 s")
    assert "wait_for_a_pong_that_never_comes" in message
    # The test's task goes on normally after the failure: it can still clean up.
    await asyncio.sleep(0.01)


async def test_a_run_within_its_bound_is_left_alone():
    phases = Phases()
    async with phases.bounded(5):
        phases("quick")
        await asyncio.sleep(0.01)
    assert str(phases) == "quick at 0.0 s"
