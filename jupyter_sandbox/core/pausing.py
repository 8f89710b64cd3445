"""Pause and resume, snapshots and fork (issue 23): a sandbox that holds no CPU or memory while
nobody uses it, and copies of its working directory.

A pause stops the sandbox's container. Where the backend can checkpoint it (``memory_problem`` is
None: gVisor on Docker) the checkpoint holds the kernels and their variables, and the resume
attaches to them again as a restarted server does (core/adoption.py); a kernel that does not
answer is replaced by a fresh one, and the model says so. Elsewhere the working directory's files
are kept on the server (core/snapshots.py) and put back after the resume, the kernels start afresh
and the model says ``memory_kept: false`` with ``memory_note`` saying why.

``PausePolicy`` holds the traits (c.SandboxManager.*: the manager inherits them, as SpecPolicy's).
``SandboxPausing`` is what the handlers, client and E2B routes call, through ``manager.pausing``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from traitlets import Bool, Enum, HasTraits, Unicode

from ..backends.base import SandboxBackend
from ..errors import Conflict, SandboxError
from ..models import SandboxModel, SandboxSpec, SnapshotModel, SpecRequest, now, parse_size
from .kernels import KernelPlumbing, hmac_key_of
from .lifecycle import SandboxLifecycle
from .registry import SandboxRegistry
from .sandbox import Sandbox
from .snapshots import ArchiveStore

Create = Callable[..., Awaitable[SandboxModel]]  # SandboxManager.create


class PausePolicy(HasTraits):
    """What is done with idle and paused sandboxes, and how much snapshots may take."""

    idle_action = Enum(
        ["remove", "pause"],
        "remove",
        help="What happens to a sandbox idle for cull_idle_timeout seconds: 'remove' it (its state is lost), or "
        "'pause' it (no CPU or memory held; resume, or the next execution, brings it back, with its variables "
        "where the runtime can checkpoint: gVisor).",
    ).tag(config=True)
    resume_on_execute = Bool(
        True,
        help="Code sent to a paused sandbox resumes it first (E2B's auto-resume). False: a 409 saying it is paused.",
    ).tag(config=True)
    max_snapshot_size_per_user = Unicode(
        "2G",
        help="Bytes all of one user's snapshots may take on the server together (their archives, under the "
        "state folder); a snapshot past it is refused (429). '0': no cap.",
    ).tag(config=True)


class SandboxPausing:
    """Pause, resume, snapshots and fork of the sandboxes of one manager."""

    def __init__(
        self,
        registry: SandboxRegistry,
        kernels: KernelPlumbing,
        lifecycle: SandboxLifecycle,
        policy: PausePolicy,
        create: Create,
        log: logging.Logger,
    ) -> None:
        self.backend: SandboxBackend = kernels.backend
        self.registry, self.kernels, self.lifecycle, self.policy, self.log = registry, kernels, lifecycle, policy, log
        self.create = create
        self.archives = ArchiveStore()
        registry.listeners.append(self._removed)
        self.attach_timeout = 20.0  # seconds a restored kernel has to answer

    # -- pause and resume ---------------------------------------------------------------
    async def pause(self, owner: str, ref: str, keep_memory: bool = True) -> SandboxModel:
        """Pause; ``keep_memory=False`` keeps the files only, whatever the runtime could keep."""
        sandbox = self.registry.get(owner, ref)
        await self.pause_sandbox(sandbox, keep_memory=keep_memory)
        return sandbox.model

    async def resume(self, owner: str, ref: str) -> SandboxModel:
        sandbox = self.registry.get(owner, ref)
        await self.resume_sandbox(sandbox)
        return sandbox.model

    async def ready_for_code(self, sandbox: Sandbox) -> None:
        """Before an execution: a paused sandbox is resumed (``resume_on_execute``) or refused (409)."""
        if not sandbox.model.paused:
            return
        if not self.policy.resume_on_execute:
            raise Conflict(f"sandbox {sandbox.model.name!r} is paused; resume it first (POST .../resume)")
        await self.resume_sandbox(sandbox)

    async def pause_sandbox(self, sandbox: Sandbox, why: str = "", keep_memory: bool = True) -> None:
        model = sandbox.model
        sandbox.refuse_if_notebook_kernel("pause it")
        async with sandbox.lock:
            if model.paused:
                return
            if model.status != "running":
                raise Conflict(f"sandbox {model.name!r} is {model.status}; only a running sandbox can be paused")
            if sandbox.executing or any(c.lock.locked() for c in sandbox.contexts.values()):
                raise Conflict(f"sandbox {model.name!r} is running code; wait for it or interrupt it, then pause")
            problem = await self.backend.memory_problem(model.id, model.spec)
            if not keep_memory and problem is None:
                problem = "the pause was asked to keep the files only"
            self._status(sandbox, "pausing")
            closed = False
            try:
                # the files first, whatever the runtime: a checkpoint that fails stops the sandbox
                # (gVisor's does), and the files are then what comes back
                await self.archives.save_paused(model.id, self.backend.pack_files(model.id), model.spec.disk)
                sandbox.close_contexts()
                closed = True
                try:
                    await self.backend.pause(model.id, keep_memory=problem is None)
                except SandboxError as e:
                    if problem is not None:
                        raise
                    problem = f"the checkpoint failed, so the files are kept and the kernels start afresh: {e.message}"
                    self.log.warning("jupyter-sandbox: sandbox %s: %s", model.id, problem)
                    await self.backend.pause(model.id, keep_memory=False)
            except BaseException:
                self.archives.drop_paused(model.id)
                self.log.exception("jupyter-sandbox: pausing sandbox %s failed", model.id)
                if closed:  # the kernels still run where the checkpoint failed: attached again
                    await self._reconnect(sandbox, memory=True)
                self._status(sandbox, "running")
                raise
            model.paused, model.memory_kept, model.memory_note = True, problem is None, problem
            model.status_reason = f"paused{why}; " + (
                "its memory is kept" if problem is None else "its files are kept, not its variables"
            )
            self._status(sandbox, "paused")
            self.log.info("jupyter-sandbox: paused sandbox %s of %s%s", model.id, model.owner, why)

    async def resume_sandbox(self, sandbox: Sandbox) -> None:
        model = sandbox.model
        async with sandbox.lock:
            if not model.paused:
                return
            memory = bool(model.memory_kept)
            self._status(sandbox, "resuming")
            try:
                await self.backend.resume(model.id, memory)
                if not memory and self.archives.has_paused(model.id):  # (with its memory: all is there)
                    await self.backend.unpack_files(model.id, self.archives.paused_chunks(model.id))
                lost = await self._reconnect(sandbox, memory)
            except BaseException:
                model.status = "paused"
                self.registry.emit("status", sandbox)
                raise
            self.archives.drop_paused(model.id)
            model.paused, model.last_activity = False, now()
            if lost:
                model.memory_kept = False
                model.memory_note = f"{lost} kernel(s) did not come back from the checkpoint and were restarted"
            model.status_reason = (
                "resumed with its memory"
                if model.memory_kept
                else f"resumed: files kept, kernels restarted (variables lost): {model.memory_note}"
            )
            self._status(sandbox, "running")
            self.log.info("jupyter-sandbox: resumed sandbox %s of %s (memory kept: %s)", model.id, model.owner, memory)

    async def _reconnect(self, sandbox: Sandbox, memory: bool) -> int:
        """Each context's kernel back: attached (``memory``), else a fresh one; how many were lost."""
        lost = 0
        for context in list(sandbox.contexts.values()):
            if memory:
                try:
                    info = await self.backend.attach_kernel(
                        sandbox.model.id, context.kernel_id, context.hmac_key, timeout=self.attach_timeout
                    )
                    context.client = await self.kernels.connect(
                        sandbox, context.kernel_id, info, timeout=self.attach_timeout
                    )
                    context.closed, context.stdin_connected = False, False
                    context.connection_info, context.hmac_key = dict(info), hmac_key_of(info) or context.hmac_key
                    continue
                except SandboxError as e:
                    self.log.warning("jupyter-sandbox: kernel %s did not come back: %s", context.kernel_id, e)
                    lost += 1
            await self.kernels.replace_kernel(sandbox, context)
        self.registry.save(sandbox)
        return lost

    def _status(self, sandbox: Sandbox, status: str) -> None:
        sandbox.model.status = status
        self.registry.save(sandbox)
        self.registry.emit("status", sandbox)

    async def idle(self, idle_for: float) -> list[str]:
        """Remove, or pause (``idle_action``), the sandboxes idle for ``idle_for`` seconds; their ids."""
        if self.policy.idle_action != "pause":
            return await self.lifecycle.remove_idle(idle_for)
        paused = []
        for sandbox in [s for s in self.registry.all() if s.model.owner and s.idle_since(now() - idle_for)]:
            if sandbox.model.id in self.registry and sandbox.idle_since(now() - idle_for):
                try:
                    await self.pause_sandbox(sandbox, f" after {idle_for:g} s idle")
                except SandboxError as e:  # e.g. code arrived meanwhile
                    self.log.info("jupyter-sandbox: not pausing idle sandbox %s: %s", sandbox.model.id, e)
                    continue
                paused.append(sandbox.model.id)
        return paused

    def _removed(self, owner: str, event: dict[str, Any]) -> None:
        """A removed sandbox's kept files go with it."""
        if event.get("action") == "removed":
            self.archives.drop_paused(str(event["sandbox_id"]))

    # -- snapshots and fork -------------------------------------------------------------
    def _cap(self) -> int:
        return parse_size(self.policy.max_snapshot_size_per_user, "max_snapshot_size_per_user")

    async def snapshot(self, owner: str, ref: str, name: str) -> SnapshotModel:
        """A named copy of the sandbox's working directory (files only: see docs/pause.md)."""
        sandbox = self.registry.get(owner, ref)
        async with sandbox.lock:
            spec = sandbox.model.spec
            if sandbox.model.paused and self.archives.has_paused(sandbox.model.id):
                chunks = self.archives.paused_chunks(sandbox.model.id)
            elif sandbox.model.paused:
                raise Conflict(f"sandbox {sandbox.model.name!r} is paused with its memory; resume it to snapshot it")
            else:
                chunks = self.backend.pack_files(sandbox.model.id)
            snapshot = await self.archives.save(owner, name, sandbox.model.id, spec, chunks, self._cap())
        self.log.info(
            "jupyter-sandbox: %s took snapshot %s of %s (%d bytes)", owner, name, sandbox.model.id, snapshot.size
        )
        return snapshot

    def list_snapshots(self, owner: str) -> list[SnapshotModel]:
        return self.archives.list(owner)

    def delete_snapshot(self, owner: str, name: str) -> None:
        self.archives.delete(owner, name)

    async def create_from_snapshot(
        self, owner: str, snapshot: str, name: str | None, spec: SpecRequest, kernel_id: str | None = None
    ) -> SandboxModel:
        """A new sandbox with the snapshot's files. Its spec is the snapshot's (the sandbox's it was
        taken of) unless the request asks for resources of its own; its metadata is the request's."""
        kept = self.archives.get(owner, snapshot)
        asked = {k: v for k, v in spec.given().items() if k != "metadata"}
        chosen: SpecRequest | SandboxSpec = spec if asked else replace(kept.spec, metadata=dict(spec.metadata or {}))
        model = await self.create(owner, name, chosen, kernel_id=kernel_id)
        await self._fill(owner, model, self.archives.chunks(owner, snapshot))
        return model

    async def fork(self, owner: str, ref: str, name: str | None = None) -> SandboxModel:
        """A running copy of a sandbox: a new one with its spec and a copy of its working directory
        (its variables are not copied); the two diverge from here."""
        origin = self.registry.get(owner, ref)
        if origin.model.paused:
            await self.ready_for_code(origin)
        model = await self.create(owner, name=name, spec=origin.model.spec)
        await self._fill(owner, model, self.backend.pack_files(origin.model.id))
        return model

    async def _fill(self, owner: str, model: SandboxModel, chunks: Any) -> None:
        """Unpack an archive into a new sandbox; it is removed if that fails (e.g. a smaller disk)."""
        try:
            await self.backend.unpack_files(model.id, chunks)
        except BaseException:
            sandbox = self.registry.sandboxes.get(model.id)
            if sandbox is not None:
                await self.lifecycle.remove(sandbox)
            raise
        self.log.info("jupyter-sandbox: %s's new sandbox %s got its files", owner, model.id)
