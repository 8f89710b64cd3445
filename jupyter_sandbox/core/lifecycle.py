"""The lifecycle of one sandbox through the backend: making its model, starting its container (or
process group) with a default context, restarting it with fresh kernels, its logs, and removing
it (out of the registry, its records forgotten, its kernels' clients closed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..backends.base import SandboxBackend, labels
from ..errors import NotFound
from ..models import ContextLog, ContextModel, SandboxLogs, SandboxModel, SandboxSpec, new_id, now
from . import kernel_kind
from .kernels import KernelPlumbing
from .registry import SandboxRegistry
from .sandbox import Sandbox


class SandboxLifecycle:
    """Starts, restarts and removes the sandboxes of one server (``server_id``, on their labels)."""

    def __init__(
        self,
        backend: SandboxBackend,
        registry: SandboxRegistry,
        kernels: KernelPlumbing,
        server_id: str,
        log: logging.Logger,
    ) -> None:
        self.backend, self.registry, self.kernels, self.server_id, self.log = (
            backend,
            registry,
            kernels,
            server_id,
            log,
        )

    def new(
        self, owner: str, name: str | None, spec: SandboxSpec, kernel_id: str | None = None, kind: str = "sandbox"
    ) -> Sandbox:
        """A sandbox not started yet ("starting"), with a new id; named by its id when ``name`` is None.
        ``kernel_id``, ``kind``: see SandboxManager.create."""
        sandbox_id = new_id("sbx_")
        created = now()
        return Sandbox(
            model=SandboxModel(
                id=sandbox_id,
                name=name or sandbox_id,
                owner=owner,
                status="starting",
                backend=self.backend.name,
                spec=spec,
                created=created,
                last_activity=created,
                isolation=self.backend.isolation,
                kernel_id=kernel_id,
                kind=kind,
            )
        )

    async def launch(
        self,
        sandbox: Sandbox,
        name: str | None,
        take_pooled: Callable[[SandboxSpec, str], Awaitable[Sandbox | None]],
        e2b_prefix: str,
    ) -> SandboxModel:
        """Register a new sandbox and start it, or give its owner a pooled one instead (when
        ``take_pooled`` has one for its spec and kind); the model of the one the owner got. ``name``
        is the one asked for (None: each is named by its id)."""
        model = sandbox.model
        owner, kernel_id, kind = model.owner, model.kernel_id, model.kind
        # Registered before any await: the name and the quota slot are taken now, so a second
        # create with the same name gets its 409 even while this one waits for the engine.
        self.registry.add(sandbox)
        announced = False
        try:
            pooled = await take_pooled(model.spec, model.kind)
            if pooled is not None:
                self.registry.pop(sandbox)
                taken = pooled.model
                taken.owner, taken.name, taken.kernel_id, taken.kind = (
                    owner,
                    name or taken.id,
                    kernel_id,
                    kind,
                )
                taken.created = taken.last_activity = now()
                self.registry.add(pooled)
                pooled.close_unread_iopub()
                kernel_kind.give_e2b_url(pooled, e2b_prefix)
                self.registry.save(pooled)
                self.log.info("jupyter-sandbox: %s took sandbox %s (%s) from the pool", owner, taken.id, taken.name)
                self.registry.emit("created", pooled)
                return taken
            self.registry.emit("created", sandbox)  # "starting": clients show it while the engine works
            announced = True
            await self.start(sandbox)
            sandbox.close_unread_iopub()
        except BaseException:
            if self.registry.pop(sandbox) and announced:
                sandbox.model.status = "removing"
                self.registry.emit("removed", sandbox)
            raise
        kernel_kind.give_e2b_url(sandbox, e2b_prefix)
        self.registry.save(sandbox)
        self.registry.emit("status", sandbox)
        self.log.info(
            "jupyter-sandbox: %s created sandbox %s (%s) on %s", owner, model.id, model.name, self.backend.name
        )
        return model

    async def start(self, sandbox: Sandbox) -> None:
        """Start the container (or process group) and its default context."""
        model = sandbox.model
        # a pooled sandbox's owner label is "": its owner comes later
        marks = labels(self.server_id, model.owner, sandbox=model.id)
        try:
            await self.backend.create(model.id, model.spec, marks)
            context = await self.kernels.start_context(sandbox, ContextModel(id=new_id("ctx_")))
            sandbox.default_context = context.model.id
        except BaseException:
            await self.backend.remove(model.id)
            raise
        model.status = "running"

    async def restart(self, sandbox: Sandbox) -> None:
        """A fresh sandbox with the same id, spec and contexts; state and files reset."""
        async with sandbox.lock:
            sandbox.model.status = "restarting"
            self.registry.emit("status", sandbox)
            models = [c.model for c in sandbox.contexts.values()]
            sandbox.close_contexts()
            sandbox.contexts.clear()
            await self.backend.restart(sandbox.model.id)
            for model in models:
                await self.kernels.start_context(sandbox, model)
            sandbox.model.status, sandbox.model.status_reason = "running", None
            sandbox.model.paused = False  # a restart of a paused sandbox starts it afresh (core/pausing.py)
            sandbox.model.last_activity = now()
            self.registry.save(sandbox)
            self.registry.emit("status", sandbox)

    async def logs(self, sandbox: Sandbox) -> SandboxLogs:
        """The container's and each context's kernel log (the end of each)."""
        contexts = list(sandbox.contexts.values())
        logs = await self.backend.logs(sandbox.model.id, [c.kernel_id for c in contexts])
        return SandboxLogs(
            container=logs["container"],
            contexts=[
                ContextLog(id=c.model.id, language=c.model.language, kernel_log=logs["kernels"].get(c.kernel_id, ""))
                for c in contexts
            ],
        )

    async def remove(self, sandbox: Sandbox) -> None:
        sandbox.model.status = "removing"
        if self.registry.pop(sandbox):  # pooled ones were never announced
            self.registry.emit("removed", sandbox)
        self.registry.note_removed(sandbox)
        self.registry.forget(sandbox.model.id)
        sandbox.close_contexts()
        await self.backend.remove(sandbox.model.id)
        self.log.info("jupyter-sandbox: removed sandbox %s of %s", sandbox.model.id, sandbox.model.owner)

    async def remove_all(self, sandboxes: list[Sandbox], why: str) -> list[str]:
        """Remove ``sandboxes`` one by one, saying ``why`` in the log; their ids."""
        for sandbox in sandboxes:
            idle = now() - sandbox.model.last_activity
            self.log.info(
                "jupyter-sandbox: removing sandbox %s of %s (%s; idle for %.0f s)",
                sandbox.model.id,
                sandbox.model.owner,
                why,
                idle,
            )
            await self.remove(sandbox)
        return [s.model.id for s in sandboxes]

    async def stats(self, sandbox: Sandbox, ref: str) -> dict[str, Any]:
        """The backend's figures for the sandbox (NotFound, by ``ref``, if it is removed meanwhile)."""
        try:
            return await self.backend.stats(sandbox.model.id)
        except Exception:
            if sandbox.model.id not in self.registry:  # removed while the engine was asked
                raise NotFound(f"no sandbox {ref!r}") from None
            raise

    def ended(self, sandbox_id: str, reason: str) -> None:
        """The backend saw a sandbox end by itself: its model says so until it is restarted."""
        sandbox = self.registry.sandboxes.get(sandbox_id)
        if sandbox is not None and sandbox.model.status == "running":
            sandbox.model.status, sandbox.model.status_reason = "exited", reason
            self.log.info("jupyter-sandbox: sandbox %s of %s ended: %s", sandbox_id, sandbox.model.owner, reason)
            self.registry.emit("status", sandbox)

    def kernel_died(self, sandbox_id: str, reason: str) -> None:
        """A notebook's kernel died in a sandbox that runs on (it is restarted): the panel says why."""
        sandbox = self.registry.sandboxes.get(sandbox_id)
        if sandbox is not None and sandbox.model.status == "running":
            sandbox.model.status_reason = f"{reason}; the kernel was restarted"
            self.registry.emit("status", sandbox)

    async def remove_idle(self, idle_for: float) -> list[str]:
        """Remove the sandboxes with no activity for ``idle_for`` seconds and no code running or
        queued, one by one; their ids."""
        culled: list[str] = []
        for sandbox in [s for s in self.registry.all() if s.idle_since(now() - idle_for)]:
            # each removal awaits the engine: a sandbox may have been given code or gone meanwhile
            if sandbox.model.id in self.registry and sandbox.idle_since(now() - idle_for):
                culled += await self.remove_all([sandbox], "idle")
        return culled
