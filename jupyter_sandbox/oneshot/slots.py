"""Each user's running slots for one-shot executions: at most N running at once, the rest
waiting their turn in the order they came."""

from __future__ import annotations

import asyncio
from collections import deque


class RunningSlots:
    """Per-owner running slots; a finishing execution hands its slot to the owner's oldest waiter."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}  # owner -> executions holding a running slot
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}  # owner -> pending executions, oldest first

    async def acquire(self, owner: str, limit: int) -> None:
        """One of the owner's ``limit`` running slots; waits its turn (oldest first)."""
        if self._running.get(owner, 0) < limit and not self._waiting.get(owner):
            self._running[owner] = self._running.get(owner, 0) + 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(turn)
        try:
            await turn  # a finishing execution hands its slot over
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release(owner)  # handed over just as this one was cancelled
            else:
                self._waiting[owner].remove(turn)
            raise

    def release(self, owner: str) -> None:
        """Give a running slot back: to the oldest waiting execution of the owner, if any."""
        waiting = self._waiting.get(owner)
        while waiting:
            turn = waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on; the count stays
                return
        self._waiting.pop(owner, None)
        self._running[owner] -= 1
        if not self._running[owner]:
            del self._running[owner]
