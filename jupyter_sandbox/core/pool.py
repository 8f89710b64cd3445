"""A pool of started, unused things, handed out at once and refilled in the background.

The manager keeps sandboxes with the default spec in one, so creating such a sandbox takes
milliseconds instead of a container and kernel start. Each item is used once: ``take`` hands
it out and the pool starts another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..errors import SandboxError

T = TypeVar("T")


class Pool(Generic[T]):
    """``size`` items made by ``make``; ``take`` checks one with ``why_not_usable`` (None when it
    is fine) and throws away (``discard``) the ones that are not."""

    def __init__(
        self,
        size: int,
        make: Callable[[], Awaitable[T]],
        discard: Callable[[T], Awaitable[None]],
        why_not_usable: Callable[[T], Awaitable[str | None]],
        log: logging.Logger,
        what: str = "sandbox",
    ):
        self.size = size
        self.ready: list[T] = []
        self._make, self._discard, self._why_not_usable = make, discard, why_not_usable
        self._filler: asyncio.Task | None = None
        self.log, self.what = log, what

    def fill(self) -> None:
        """Start making items until there are ``size`` (in the background; once at a time)."""
        if len(self.ready) < self.size and (self._filler is None or self._filler.done()):
            self._filler = asyncio.ensure_future(self._fill_now())

    async def _fill_now(self) -> None:
        while len(self.ready) < self.size:
            try:
                item = await self._make()
            except SandboxError as e:  # e.g. the engine is down: taking from the pool just finds none
                self.log.warning("jupyter-sandbox: could not start a pooled %s: %s", self.what, e.message)
                return
            self.ready.append(item)

    async def take(self) -> T | None:
        """A usable item, or None when the pool has none (it refills either way)."""
        try:
            while self.ready:
                item = self.ready.pop(0)
                reason = await self._why_not_usable(item)
                if reason is None:
                    return item
                self.log.warning("jupyter-sandbox: dropping a pooled %s: %s", self.what, reason)
                await self._discard(item)
            return None
        finally:
            self.fill()

    async def close(self) -> None:
        """Stop refilling and discard every waiting item."""
        if self._filler is not None:
            self._filler.cancel()
            await asyncio.gather(self._filler, return_exceptions=True)  # a half-made item cleans up after itself
            self._filler = None
        items, self.ready = self.ready, []
        await asyncio.gather(*(self._discard(i) for i in items), return_exceptions=True)
