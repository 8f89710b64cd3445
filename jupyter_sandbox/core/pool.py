"""A pool of started, unused things, handed out at once and refilled in the background.

The manager keeps sandboxes with the default spec in one, so creating such a sandbox takes
milliseconds instead of a container and kernel start; the one-shot runner keeps containers
whose supervisor waits for a job. Each item is used once: ``take`` hands it out and the pool
starts another. Up to ``size`` items are made at once, so a pool refills as fast as the engine
allows without starting more work than it holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..errors import SandboxError

T = TypeVar("T")


class Pool(Generic[T]):
    """``size`` items made by ``make``; ``take`` checks one with ``why_not_usable`` (None when it
    is fine) and throws away (``discard``) the ones that are not.

    ``refill_delay`` seconds pass between a take and the start of the item that replaces it, so
    that the engine's work for the refill does not compete with the first use of what was taken.
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
    ):
        self.size = size
        self.ready: list[T] = []
        self._make, self._discard, self._why_not_usable = make, discard, why_not_usable
        self._making: set[asyncio.Task] = set()
        self._waiters: deque[asyncio.Future] = deque()  # takers waiting for an item being made
        self._refill: asyncio.TimerHandle | None = None
        self._closed = False
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
        self.ready.append(item)

    async def take(self, wait: bool = False) -> T | None:
        """A usable item, or None when the pool has none (it refills either way). ``wait``: when
        none is ready but some are being made, wait for the next one rather than return None."""
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
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.ready.append(waiter.result())  # handed over just as the taker went away
            raise

    async def close(self) -> None:
        """Stop refilling and discard every waiting item."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
        making = list(self._making)
        for task in making:
            task.cancel()
        await asyncio.gather(*making, return_exceptions=True)  # a half-made item cleans up after itself
        items, self.ready = self.ready, []
        await asyncio.gather(*(self._discard(i) for i in items), return_exceptions=True)
