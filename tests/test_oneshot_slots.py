"""oneshot/slots.py: each user's running slots, handed to their oldest waiter."""

from __future__ import annotations

import asyncio

from jupyter_sandbox.oneshot.slots import RunningSlots


async def test_a_released_slot_goes_to_the_owners_oldest_waiter():
    slots = RunningSlots()
    await slots.acquire("alice", 1)
    await asyncio.wait_for(slots.acquire("bob", 1), 1)  # another owner's slots are their own
    order: list[str] = []

    async def wait(name: str) -> None:
        await slots.acquire("alice", 1)
        order.append(name)

    first, second = asyncio.ensure_future(wait("first")), asyncio.ensure_future(wait("second"))
    await asyncio.sleep(0.01)
    assert order == []  # the one slot is held
    slots.release("alice")
    await asyncio.sleep(0.01)
    assert order == ["first"]
    slots.release("alice")
    await asyncio.gather(first, second)
    assert order == ["first", "second"]


async def test_a_cancelled_waiter_leaves_the_queue_and_the_count_is_given_back():
    slots = RunningSlots()
    await slots.acquire("alice", 1)
    waiter = asyncio.ensure_future(slots.acquire("alice", 1))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    slots.release("alice")
    # nothing held, nobody waiting: the next one gets a slot at once
    await asyncio.wait_for(slots.acquire("alice", 1), 1)
