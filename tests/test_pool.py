"""core/pool.py without a backend: items are plain objects made when the test says so."""

from __future__ import annotations

import asyncio
import logging

from jupyter_sandbox.core.pool import Pool


class Maker:
    """Makes numbered items, each only once the test releases it."""

    def __init__(self):
        self.made, self.released, self.discarded = 0, asyncio.Queue(), []

    async def make(self) -> int:
        await self.released.get()
        self.made += 1
        return self.made

    async def discard(self, item: int) -> None:
        self.discarded.append(item)


async def usable(item: int) -> str | None:
    return None


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_pool_is_full_again_after_handing_items_to_waiting_takers():
    """A taker that waits gets the next item made; the pool then makes a replacement, so it
    ends full (it used to stay one short per hand-over: the finished maker counted as busy)."""
    maker = Maker()
    pool = Pool(2, maker.make, maker.discard, usable, logging.getLogger("test"))
    pool.fill()
    await settle()
    assert pool.making == 2 and pool.ready == []

    takers = [asyncio.ensure_future(pool.take(wait=True)) for _ in range(3)]
    await settle()
    for _ in range(3):
        maker.released.put_nowait(None)
        await settle()
    assert sorted(await asyncio.gather(*takers)) == [1, 2, 3]

    # every hand-over started a replacement: two are being made, none handed out twice
    assert pool.making == 2
    for _ in range(2):
        maker.released.put_nowait(None)
    await settle()
    assert pool.ready == [4, 5] and pool.making == 0
    await pool.close()
    assert maker.discarded == [4, 5]


async def test_a_take_refills_after_the_delay_and_never_beyond_the_size():
    maker = Maker()
    pool = Pool(1, maker.make, maker.discard, usable, logging.getLogger("test"), refill_delay=0.5)
    pool.fill()
    maker.released.put_nowait(None)
    await settle()
    assert await pool.take() == 1
    assert pool.making == 0  # not before the delay
    await asyncio.sleep(1.0)
    assert pool.making == 1
    maker.released.put_nowait(None)
    maker.released.put_nowait(None)  # a second release finds nobody making
    await settle()
    assert pool.ready == [2] and pool.making == 0 and maker.made == 2
    await pool.close()
