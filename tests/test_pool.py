"""core/pool.py without a backend: items are plain objects made when the test says so."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import docker

from jupyter_sandbox.backends.base import LABEL_PREFIX
from jupyter_sandbox.core.manager import SandboxManager, host_memory
from jupyter_sandbox.core.pool import Pool, demand_cap

from servers import SESSION, SESSION_LABEL, JupyterServer, result_text


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


def test_the_default_cap_scales_with_the_host_and_stays_within_what_one_user_may_hold():
    gib = 1024**3
    assert demand_cap(1, cores=2, memory=24 * gib, per_user=8) == 2  # a core each
    assert demand_cap(1, cores=16, memory=8 * gib, per_user=8) == 2  # 4 GiB each
    assert demand_cap(1, cores=64, memory=512 * gib, per_user=8) == 8  # what one user may hold
    assert demand_cap(1, cores=1, memory=2 * gib, per_user=8) == 1  # a small host: never below the minimum
    assert demand_cap(3, cores=2, memory=24 * gib, per_user=8) == 3
    assert demand_cap(0, cores=64, memory=512 * gib, per_user=8) == 0  # turned off stays off


async def test_a_pool_grows_while_takes_come_faster_than_refills_then_shrinks_when_idle():
    maker = Maker()
    pool = Pool(1, maker.make, maker.discard, usable, logging.getLogger("test"), max_size=3, shrink_after=0.3)
    pool.fill()
    maker.released.put_nowait(None)
    await settle()
    assert await pool.take() == 1 and pool.size == 1  # the pool was full: no sign of demand
    assert await pool.take() is None and pool.size == 2  # the refill is not ready: it grows
    assert await pool.take() is None and pool.size == 3
    assert await pool.take() is None and pool.size == 3  # never beyond max_size
    for _ in range(3):
        maker.released.put_nowait(None)
    await settle()
    assert pool.ready == [2, 3, 4] and pool.making == 0
    assert await pool.take() == 2 and pool.size == 3  # full: served, no growth
    for _ in range(5):
        maker.released.put_nowait(None)  # more than it may make: it only makes what it keeps
    await settle()
    assert pool.ready == [3, 4, 5] and maker.made == 5

    # idle: one item fewer per shrink_after, down to the minimum, the surplus discarded
    await asyncio.sleep(0.45)
    assert pool.size == 2 and pool.ready == [3, 4] and maker.discarded == [5]
    await asyncio.sleep(0.3)
    assert pool.size == 1 and pool.ready == [3] and maker.discarded == [5, 4]
    await asyncio.sleep(0.5)
    assert pool.size == 1 and pool.ready == [3]  # never below the minimum
    await pool.close()
    assert maker.discarded == [5, 4, 3]


async def test_an_item_made_while_the_pool_shrank_is_discarded_not_kept():
    maker = Maker()
    pool = Pool(1, maker.make, maker.discard, usable, logging.getLogger("test"), max_size=2, shrink_after=0.3)
    pool.fill()
    assert await pool.take() is None and pool.size == 2  # demand: it grows; the refill waits for none
    maker.released.put_nowait(None)
    await settle()
    assert pool.ready == [1] and pool.making == 1  # the second is still being made
    await asyncio.sleep(0.45)
    assert pool.size == 1 and pool.ready == [1]
    maker.released.put_nowait(None)
    await settle()
    assert pool.ready == [1] and maker.discarded == [2]  # one more than it keeps now
    await pool.close()


async def test_a_take_resets_the_idle_clock():
    maker = Maker()
    pool = Pool(1, maker.make, maker.discard, usable, logging.getLogger("test"), max_size=2, shrink_after=0.4)
    pool.fill()
    assert await pool.take() is None and pool.size == 2  # the first fill is not ready: demand
    for _ in range(2):
        maker.released.put_nowait(None)
    await settle()
    for _ in range(3):  # takes every 0.25 s, each within shrink_after of the last: it keeps 2
        await asyncio.sleep(0.25)
        assert await pool.take() is not None and pool.size == 2
        maker.released.put_nowait(None)
        await settle()
    await asyncio.sleep(0.5)
    assert pool.size == 1
    await pool.close()


async def test_a_pool_without_max_size_keeps_its_size_whatever_the_demand():
    """The one-shot runner's pool: fixed."""
    maker = Maker()
    pool = Pool(2, maker.make, maker.discard, usable, logging.getLogger("test"))
    pool.fill()
    for _ in range(4):
        assert await pool.take() is None
    assert pool.size == pool.max_size == 2 and pool.making == 2
    await pool.close()


async def test_a_pool_never_filled_by_its_owner_stays_empty_whatever_is_taken():
    """A manager embedded in a command never starts its pool: its creates must not start one."""
    maker = Maker()
    pool = Pool(1, maker.make, maker.discard, usable, logging.getLogger("test"), max_size=3)
    for _ in range(3):
        assert await pool.take() is None
        assert await pool.take(wait=True) is None
    await asyncio.sleep(0.1)
    assert pool.size == 1 and pool.making == 0 and pool.ready == []
    await pool.close()


async def test_a_manager_on_default_settings_serves_creates_warm_and_grows_with_demand():
    """The local backend (no engine needed): a default manager keeps one started sandbox, hands it
    to the first create, and keeps two once creates come faster than it refills."""
    from conftest import make_manager  # tests/ is not a package: conftest is found only at run time

    manager = make_manager("local", pool_max_size=2)  # the default pool_size; the cap fixed for any host
    assert SandboxManager.pool_size.default() == 1 and manager.pool.min_size == 1
    assert make_manager("local").pool.max_size == demand_cap(
        1, os.cpu_count() or 1, host_memory(), manager.max_sandboxes_per_user
    )
    assert make_manager("local", pool_size=0).pool.max_size == 0  # turned off: no pool at all
    try:
        await manager.start()
        while not manager.pool.ready:
            await asyncio.sleep(0.1)
        (waiting,) = manager.pool.ready
        first = await manager.create("me", "first")
        assert first.id == waiting.model.id and manager.pool.size == 1  # warm; the pool was full
        second = await manager.create("me", "second")  # the refill is not ready: cold, and it grows
        assert second.id != first.id and manager.pool.size == 2
        deadline = time.monotonic() + 120
        while len(manager.pool.ready) < 2:
            assert time.monotonic() < deadline, "the pool did not grow to two"
            await asyncio.sleep(0.1)
        ready = {s.model.id for s in manager.pool.ready}
        third, fourth = await manager.create("me", "third"), await manager.create("me", "fourth")
        assert {third.id, fourth.id} == ready  # both warm
        assert sorted(m.name for m in manager.list("me")) == sorted(["first", "second", "third", "fourth"])
    finally:
        await manager.shutdown()


def test_a_server_on_default_settings_hands_its_first_create_a_started_sandbox(docker_ready, tmp_path):
    """A real server with the pool's defaults (the test servers turn it off): one started sandbox
    waits, unowned; the first create gets it and runs at once; none is left when the server stops."""
    server = JupyterServer(tmp_path)
    del server.config["SandboxManager"]["pool_size"]
    with server:
        (line,) = [ln for ln in server.log().splitlines() if "jupyter-sandbox: server id " in ln][-1:]
        server_label = f"{LABEL_PREFIX}.server={line.split('jupyter-sandbox: server id ')[1].split()[0].rstrip(',')}"
        deadline = time.monotonic() + 120
        while "a pooled sandbox is ready" not in server.log():  # its kernel started and warmed up
            assert time.monotonic() < deadline, f"no pooled sandbox got ready:\n{server.log()}"
            time.sleep(0.2)
        (pooled,) = _running_unowned_sandboxes(server_label)
        r = server.api("POST", "sandboxes", json={"name": "first"})
        assert r.status_code == 201, r.text
        assert (r.json()["id"], r.json()["status"]) == (pooled, "running")
        assert result_text(server.execute(pooled, "1+1")) == "2"
    assert _containers(server_label) == []


def _containers(*labels: str) -> list:
    # sparse: no inspect per container (one removed between list and inspect would fail it)
    return docker.from_env().containers.list(
        all=True, sparse=True, filters={"label": [f"{SESSION_LABEL}={SESSION}", *labels]}
    )


def _running_unowned_sandboxes(server_label: str) -> list[str]:
    """Ids of the server's running sandboxes that nobody owns yet: the pooled ones."""
    return [
        c.attrs["Labels"][f"{LABEL_PREFIX}.sandbox"]  # (a sparse listing has no .labels)
        for c in _containers(server_label, f"{LABEL_PREFIX}.sandbox", f"{LABEL_PREFIX}.owner=")
        if c.status == "running"
    ]
