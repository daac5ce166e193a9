"""Request bodies in progress: a byte budget across them and a deadline for each."""

from __future__ import annotations

import asyncio

import pytest

from flts_streams.core.errors import BodyTimeout, Overloaded
from flts_streams.serving.body_budget import BodyBudget, read_within


def test_the_budget_refuses_a_body_that_does_not_fit_and_frees_what_finished():
    budget = BodyBudget(10)
    with budget.reserve(6):
        with pytest.raises(Overloaded, match="6 bytes of request bodies are being received"):
            budget.reserve(5)
        with budget.reserve(4):
            assert budget.reserved == 10
    assert budget.reserved == 0
    with pytest.raises(RuntimeError), budget.reserve(10):
        raise RuntimeError("a failed read frees its reservation too")
    assert budget.reserved == 0


async def test_a_body_that_does_not_arrive_in_time_is_a_body_timeout():
    never = asyncio.get_running_loop().create_future()
    with pytest.raises(BodyTimeout, match="did not arrive within 0.05s"):
        await read_within(never, 0.05)

    async def prompt() -> bytes:
        return b"{}"

    assert await read_within(prompt(), 1.0) == b"{}"
