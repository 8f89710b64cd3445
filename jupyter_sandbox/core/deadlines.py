"""Sandbox lifetimes: a sandbox given a timeout ends at its deadline (``SandboxModel.end_at``)
unless extended. The deadline is part of the sandbox's record (core/state.py), so a restarted
server that takes the sandbox back also ends it on time, or at once if the deadline passed
while it was down.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..errors import InvalidInput, SandboxError
from ..models import SandboxModel
from .manager import SandboxManager

# The longest lifetime one call may give (E2B's own limit for its Pro tier is 24 hours).
MAX_TIMEOUT = 24 * 3600


def check_seconds(value: int, field: str) -> int:
    """``value``, a number of seconds one call may give a sandbox (InvalidInput otherwise)."""
    if value < 0 or value > MAX_TIMEOUT:
        raise InvalidInput(f"{field} must be between 0 and {MAX_TIMEOUT} seconds, not {value}", field=field)
    return value


class Deadlines:
    """Sets and extends deadlines, and removes the sandboxes whose deadline has passed."""

    def __init__(self, manager: SandboxManager, log: logging.Logger, interval: float = 1.0):
        self.manager, self.log, self.interval = manager, log, interval
        self._task: asyncio.Task[None] | None = None

    def set(self, owner: str, ref: str, seconds: int, field: str = "timeout") -> SandboxModel:
        """The owner's sandbox ends ``seconds`` from now (sooner or later than before)."""
        sandbox = self.manager.registry.get(owner, ref)
        sandbox.model.end_at = time.time() + check_seconds(seconds, field)
        self.manager.registry.save(sandbox)
        return sandbox.model

    def extend(self, owner: str, ref: str, seconds: int, field: str = "duration") -> SandboxModel:
        """The owner's sandbox lives at least ``seconds`` more (a later deadline stands)."""
        sandbox = self.manager.registry.get(owner, ref)
        wanted = time.time() + check_seconds(seconds, field)
        if sandbox.model.end_at is not None and sandbox.model.end_at < wanted:
            sandbox.model.end_at = wanted
            self.manager.registry.save(sandbox)
        return sandbox.model

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._enforce_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def enforce(self) -> list[str]:
        """Remove every sandbox whose deadline has passed; their ids."""
        moment = time.time()
        due = [m for m in self.manager.list() if m.end_at is not None and m.end_at <= moment]
        ended = []
        for model in due:
            try:
                await self.manager.remove(model.owner, model.id)
            except SandboxError as e:  # removed meanwhile (404), or the engine refused: tried again next time
                self.log.warning("jupyter-sandbox: ending sandbox %s at its deadline failed: %s", model.id, e)
                continue
            self.log.info("jupyter-sandbox: sandbox %s of %s ended at its deadline", model.id, model.owner)
            ended.append(model.id)
        return ended

    async def _enforce_forever(self) -> None:
        while True:
            try:
                await self.enforce()
            except Exception:  # a task's error would vanish: say it, and keep enforcing
                self.log.exception("jupyter-sandbox: enforcing sandbox deadlines failed")
            await asyncio.sleep(self.interval)
