"""A pool of started, unused things, handed out at once and refilled in the background.

The manager keeps sandboxes with the default spec in one, so creating such a sandbox takes
milliseconds instead of a container and kernel start; the one-shot runner keeps containers
whose supervisor waits for a job. Each item is used once: ``take`` hands it out and the pool
starts another. Up to ``size`` items are made at once, so a pool refills as fast as the engine
allows without starting more work than it holds.

A pool may also follow demand: given a ``max_size`` above ``size``, it grows by one each time a
take comes while the pool is short (takes came faster than it refills), up to ``max_size``, and
shrinks back by one each ``shrink_after`` seconds without a take, down to ``size`` again.
``demand_cap`` is the default ``max_size`` for the manager's pool of sandboxes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..errors import SandboxError

T = TypeVar("T")

# Seconds without a take after which a pool grown by demand gives back one item (and again after
# as many more): a burst of creates keeps its warm items for the next few minutes, not for ever.
SHRINK_AFTER = 300.0
# Host memory per item a pool may grow to (and one item per core): a waiting sandbox holds only
# ~40 MB, but its start takes about a core for half a second, and several servers share a host.
MEMORY_PER_ITEM = 4 * 1024**3


def demand_cap(minimum: int, cores: int, memory: int, per_user: int) -> int:
    """The most items a pool of at least ``minimum`` grows to on a host of ``cores`` and
    ``memory`` bytes: one per core and per 4 GiB, never more than one user may hold at once
    (``per_user``, a burst beyond it is refused anyway), and never below ``minimum``. A pool
    turned off (``minimum`` 0) stays off."""
    if minimum <= 0:
        return 0
    return max(minimum, min(cores, memory // MEMORY_PER_ITEM, per_user))


class Pool(Generic[T]):
    """``size`` items made by ``make``; ``take`` checks one with ``why_not_usable`` (None when it
    is fine) and throws away (``discard``) the ones that are not.

    ``refill_delay`` seconds pass between a take and the start of the item that replaces it, so
    that the engine's work for the refill does not compete with the first use of what was taken.
    With ``max_size`` above ``size`` the pool follows demand between the two (see the module).
    """

    def __init__(
        self,
        size: int,
        make: Callable[[], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]],
        why_not_usable: Callable[[T], Awaitable[str | None]],
        log: logging.Logger,
        what: str = "sandbox",
        refill_delay: float = 0.0,
        max_size: int | None = None,
        shrink_after: float = SHRINK_AFTER,
    ):
        self.size = self.min_size = size  # size: the items kept now; it moves with demand
        self.max_size = max(size, max_size if max_size is not None else size)
        self.shrink_after = shrink_after
        self.ready: list[T] = []
        self._make, self._discard, self._why_not_usable = make, discard, why_not_usable
        self._making: set[asyncio.Task[None]] = set()
        self._waiters: deque[asyncio.Future[T | None]] = deque()  # takers waiting for an item being made
        self._refill: asyncio.TimerHandle | None = None
        self._shrink: asyncio.TimerHandle | None = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False  # by the owner's first fill(): until then takes neither refill nor grow it
        self.refill_delay = refill_delay
        self.log, self.what = log, what

    @property
    def making(self) -> int:
        """Items being made now."""
        return len(self._making)

    def fill(self, delay: float = 0.0) -> None:
        """Start making items (in the background, up to ``size`` at once) until there are ``size``;
        after ``delay`` seconds when given."""
        if self._closed:
            return
        self._started = True
        if delay > 0:
            if self._refill is None:
                self._refill = asyncio.get_running_loop().call_later(delay, self._refill_now)
            return
        while len(self.ready) + len(self._making) < self.size:
            task = asyncio.ensure_future(self._make_one())
            self._making.add(task)
            task.add_done_callback(self._making.discard)

    def _refill_now(self) -> None:
        self._refill = None
        self.fill()

    async def _make_one(self) -> None:
        try:
            item = await self._make()
        except Exception as e:  # e.g. the engine is down: taking from the pool just finds none
            self._making.discard(asyncio.current_task())
            if isinstance(e, SandboxError):
                self.log.warning("jupyter-sandbox: could not start a pooled %s: %s", self.what, e.message)
            else:
                self.log.exception("jupyter-sandbox: could not start a pooled %s", self.what)
            if not self._making:
                for waiter in self._waiters:  # nothing else is coming: they start their own
                    if not waiter.done():
                        waiter.set_result(None)
                self._waiters.clear()
            return
        # No longer being made: the fill() below must count this slot as free, or the pool
        # would stay one short once the item is handed to a waiter.
        self._making.discard(asyncio.current_task())
        if self._closed:
            await self._discard(item)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                self.fill()  # what the waiter took is replaced now: it never sat in the pool
                return
        if len(self.ready) >= self.size:  # the pool shrank while this one was being made
            await self._discard(item)
            return
        self.ready.append(item)
        self.log.info("jupyter-sandbox: a pooled %s is ready (%d waiting)", self.what, len(self.ready))

    def _follow_demand(self) -> None:
        """On a take: grow by one when the pool is short of its size (the last take's replacement
        is not ready yet: takes come faster than refills); shrink later if no take follows."""
        if self.max_size <= self.min_size or self._closed:
            return
        if len(self.ready) < self.size and self.size < self.max_size:
            self.size += 1
            self.log.info("jupyter-sandbox: creates come faster than the pool refills: it keeps %d now", self.size)
        if self._shrink is not None:
            self._shrink.cancel()
            self._shrink = None
        if self.size > self.min_size:
            self._shrink = asyncio.get_running_loop().call_later(self.shrink_after, self._shrink_now)

    def _shrink_now(self) -> None:
        """No take for ``shrink_after`` seconds: keep one item fewer (down to ``min_size``)."""
        self._shrink = None
        if self._closed or self.size <= self.min_size:
            return
        self.size -= 1
        self.log.info("jupyter-sandbox: no create for %.0f s: the pool keeps %d now", self.shrink_after, self.size)
        while len(self.ready) > self.size:
            task = asyncio.ensure_future(self._discard(self.ready.pop()))
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)
        if self.size > self.min_size:
            self._shrink = asyncio.get_running_loop().call_later(self.shrink_after, self._shrink_now)

    async def take(self, wait: bool = False) -> T | None:
        """A usable item, or None when the pool has none (it refills either way). ``wait``: when
        none is ready but some are being made, wait for the next one rather than return None.
        A pool its owner never filled (a manager embedded in a command) stays empty: None."""
        if not self._started:
            return None
        self._follow_demand()
        try:
            while self.ready:
                item = self.ready.pop(0)
                reason = await self._why_not_usable(item)
                if reason is None:
                    return item
                self.log.warning("jupyter-sandbox: dropping a pooled %s: %s", self.what, reason)
                await self._discard(item)
        finally:
            self.fill(self.refill_delay)
        if not wait or self._closed:
            return None
        self.fill()  # someone waits: no delay
        if not self._making:
            return None
        waiter: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:
                self.ready.append(handed)  # handed over just as the taker went away
            raise

    async def close(self) -> None:
        """Stop refilling and discard every waiting item."""
        self._closed = True
        for timer in (self._refill, self._shrink):
            if timer is not None:
                timer.cancel()
        self._refill = self._shrink = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        making = list(self._making)
        for task in making:
            task.cancel()
        await asyncio.gather(*making, return_exceptions=True)  # a half-made item cleans up after itself
        items, self.ready = self.ready, []
        await asyncio.gather(*(self._discard(i) for i in items), *self._discarding, return_exceptions=True)
