"""The pool plumbing: the manager's started sandboxes with the default spec and no owner yet
(core/pool.py keeps them and refills), warmed up before anyone waits for them, and handed out
to a create that asks for nothing else."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..models import SandboxSpec
from .kernel_code import program_code
from .kernels import KernelPlumbing
from .pool import Pool
from .sandbox import Sandbox


class PooledSandboxes:
    """``size`` sandboxes started by ``start_unowned`` and thrown away by ``remove``; ``default_spec``
    is the spec a create must ask for to get one."""

    def __init__(
        self,
        size: int,
        refill_delay: float,
        start_unowned: Callable[[], Awaitable[Sandbox]],
        remove: Callable[[Sandbox], Awaitable[None]],
        default_spec: Callable[[], SandboxSpec],
        kernels: KernelPlumbing,
        log: logging.Logger,
        max_size: int | None = None,
    ) -> None:
        self.start_unowned, self.remove, self.default_spec, self.kernels = start_unowned, remove, default_spec, kernels
        self.pool: Pool[Sandbox] = Pool(
            size,
            self._make,
            remove,
            self._why_not_usable,
            log,
            refill_delay=refill_delay,
            max_size=max_size,
        )

    async def _make(self) -> Sandbox:
        sandbox = await self.start_unowned()
        # A fresh kernel's first execution pays for what IPython sets up on first use (the display
        # formatters above all): pay it now, silently (no history, no execution count, no output).
        try:
            await self.kernels.run_silently(sandbox.context(None), program_code("warm_up"))
        except BaseException:
            await self.remove(sandbox)
            raise
        return sandbox

    async def _why_not_usable(self, sandbox: Sandbox) -> str | None:
        return await self.kernels.exit_reason(sandbox, sandbox.context(None))

    async def take(self, spec: SandboxSpec, kind: str) -> Sandbox | None:
        """A started sandbox when ``spec`` is the default one (for code sent through the API: a
        notebook's kernel has its debugger, which pooled kernels have not)."""
        if kind != "sandbox" or spec != self.default_spec():  # a miss counts too: the pool follows demand
            return None
        return await self.pool.take()
