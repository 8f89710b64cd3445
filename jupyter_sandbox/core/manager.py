"""SandboxManager: the facade every caller uses, and c.SandboxManager.*'s traits. It checks what
callers ask and hands the work to parts that own one thing each (as jupyter_client splits kernels):

- spec_policy.py: limits, images, networks, quotas (SpecPolicy: this class inherits its traits)
- registry.py: which sandboxes exist and who owns them; their events and records
- lifecycle.py: starting, restarting and removing one sandbox through the backend
- sandbox.py: one sandbox and its contexts: execute, interrupt, input
- kernels.py: starting, connecting to and replacing kernels; kernel_code.py: code run in them
- adoption.py: taking sandboxes back after a restart; pooled.py: started sandboxes kept ready
- kernel_kind.py: notebook kernels' sandboxes, E2B's URLs; files.py: transfers; pausing.py: pause, snapshots
- volumes.py: persistent volumes (its ``volumes``)
"""

from __future__ import annotations

import asyncio
import builtins
import os
import secrets
from collections.abc import AsyncGenerator
from typing import Any

from traitlets import Bool, Float, Int, Unicode, default
from traitlets.config import LoggingConfigurable

from ..backends.base import confine
from ..errors import Conflict, InvalidInput, QuotaExceeded
from ..models import (
    ContextModel,
    Execution,
    SandboxLogs,
    SandboxModel,
    SandboxSpec,
    SpecRequest,
    new_id,
    validate_name,
)
from . import kernel_kind, languages
from .adoption import Adoption
from .collector import EventSink
from .files import FileTransfers
from .kernels import KernelPlumbing
from .lifecycle import SandboxLifecycle
from .pausing import PausePolicy, SandboxPausing
from .pool import Pool, demand_cap
from .pooled import PooledSandboxes
from .registry import EventListener, SandboxRegistry
from .sandbox import Sandbox
from .spec_policy import SpecPolicy, host_memory
from .state import SandboxRecords
from .volumes import SandboxVolumes


class SandboxManager(LoggingConfigurable, SpecPolicy, PausePolicy):
    """Creates sandboxes for owners, runs code in their contexts, removes them."""

    server_id = Unicode(
        help="Label on this manager's containers. The server sets it from its slot (identity.py), so it is "
        "unique among live servers and kept across restarts; a manager made alone gets a random one."
    )
    kernel_ready_timeout = Float(60.0, help="Seconds to wait for a new kernel to answer.").tag(config=True)
    reap_on_start = Bool(
        True,
        help="On start, deal with what this server's earlier run left: take back its sandboxes (see "
        "adopt_on_start) and remove the rest.",
    ).tag(config=True)
    adopt_on_start = Bool(
        True,
        help="A server restarted after a crash (or an upgrade) takes back its running sandboxes, kernels and "
        "variables included. False: it removes them.",
    ).tag(config=True)
    adopt_timeout = Float(
        20.0,
        help="Seconds a restarted server waits for each kernel it takes back to answer. One that stays "
        "silent (e.g. its own code stopped it) is replaced by a fresh kernel, and its sandbox says so. "
        "Sandboxes are taken back in parallel: one user's silent kernels never delay another's.",
    ).tag(config=True)
    cull_idle_timeout = Float(
        0.0,
        help="Remove a sandbox after this many seconds without executions or file and context "
        "changes (0 = never). Sandboxes running or queueing code are never culled.",
    ).tag(config=True)
    cull_interval = Float(60.0, help="Seconds between checks for idle sandboxes.").tag(config=True)
    max_file_transfers_per_user = Int(
        4, help="File operations (uploads, downloads, listings) one user may have under way at once; more wait."
    ).tag(config=True)
    max_output_size = Int(
        10 * 1024**2,
        help="Bytes of output (streams and results) one execution keeps and sends; beyond it a "
        "line says how much was dropped. Keeps the server's memory flat whatever the code prints.",
    ).tag(config=True)
    pool_size = Int(
        1,
        help="Sandboxes with the default spec kept started, so creating one with the default spec "
        "takes milliseconds instead of a container and kernel start (each waiting one holds its idle "
        "memory, ~40 MB). More are kept while creates come faster than the pool refills, up to "
        "pool_max_size, and given back after 5 idle minutes. 0 = none (every create starts cold).",
    ).tag(config=True)
    pool_max_size = Int(
        -1,
        help="Most sandboxes the pool grows to while creates come fast (-1: one per core and per 4 GiB "
        "of the host's memory, at most max_sandboxes_per_user; pool_size or less: a fixed pool).",
    ).tag(config=True)
    pool_refill_delay = Float(
        1.0,
        help="Seconds between taking a pooled sandbox and starting its replacement, so that the refill (a "
        "container and a kernel start) does not compete with the first executions in the one taken.",
    ).tag(config=True)

    @default("server_id")
    def _server_id_default(self) -> str:
        return secrets.token_hex(8)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Where E2B's SDK reaches a sandbox (set by the server to {base_url}sandbox/e2b/); each
        # sandbox's e2b_url is this + "<id>/<secret>". Empty: no E2B routes (no server).
        self.e2b_prefix = ""
        self.registry = SandboxRegistry()
        self.kernels = KernelPlumbing(self.backend, self.registry.save, lambda: self.kernel_ready_timeout)
        self.files = FileTransfers(self.backend, lambda: self.max_file_transfers_per_user)
        self.lifecycle = SandboxLifecycle(self.backend, self.registry, self.kernels, self.server_id, self.log)
        self.volumes = SandboxVolumes(parent=self, backend=self.backend, registry=self.registry)
        self.backend.on_exit, self.backend.on_kernel_died = self.lifecycle.ended, self.lifecycle.kernel_died
        self.adoption = Adoption(self.backend, self.registry, self.kernels, self.log)
        self.pooled = PooledSandboxes(
            self.pool_size,
            self.pool_refill_delay,
            self._start_unowned,
            self.lifecycle.remove,
            lambda: self.resolve_spec(None),
            self.kernels,
            self.log,
            max_size=self.pool_max_size
            if self.pool_max_size >= 0
            else demand_cap(self.pool_size, os.cpu_count() or 1, host_memory(), self.max_sandboxes_per_user),
        )
        self.pausing = SandboxPausing(self.registry, self.kernels, self.lifecycle, self, self.create, self.log)
        self._culler: asyncio.Task[None] | None = None
        self._reaping: asyncio.Future[None] | None = None  # taking back the earlier run's sandboxes

    @property
    def records(self) -> SandboxRecords | None:
        """Where this server's sandboxes' records are kept (its slot); None: nowhere, no restart takes them back."""
        return self.registry.records

    @records.setter
    def records(self, records: SandboxRecords | None) -> None:
        self.registry.records = records

    @property
    def pool(self) -> Pool[Sandbox]:
        """Started sandboxes with the default spec and no owner yet."""
        return self.pooled.pool

    # -- the registry -------------------------------------------------------------------
    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(owner, event)`` on every sandbox event (created, status, removed, execution_*)."""
        self.registry.listeners.append(listener)

    def get(self, owner: str, ref: str) -> SandboxModel:
        """The model of the owner's sandbox with id or name ``ref``."""
        return self.registry.get(owner, ref).model

    def list(self, owner: str | None = None) -> builtins.list[SandboxModel]:
        return self.registry.models(owner)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Reap containers a previous run of this server left behind; start the idle culler."""
        if self.cull_idle_timeout > 0 and self._culler is None:
            self._culler = asyncio.ensure_future(self._cull_forever())
        if self.reap_on_start:
            adopt = self.adopt_on_start, self.adopt_timeout, self.e2b_prefix
            # a task: a shutdown meanwhile waits for it, so no sandbox is taken back after it
            self._reaping = asyncio.ensure_future(self.adoption.reap(self.server_id, *adopt))
            await asyncio.shield(self._reaping)
        self.pool.fill()

    async def create(
        self,
        owner: str,
        name: str | None = None,
        spec: SpecRequest | dict[str, Any] | SandboxSpec | None = None,
        kernel_id: str | None = None,
        kind: str = "sandbox",
    ) -> SandboxModel:
        """A running sandbox for ``owner``. With ``kernel_id`` it is that notebook kernel's own
        sandbox and goes when the kernel shuts down (``remove_kernel_sandboxes``).

        ``kind="kernel"``: the sandbox's kernel is a notebook's whole kernel (jupyter_sandbox.kernel),
        reached by the notebook through ``kernel_connection``; code is not sent to it here.
        """
        if kind not in ("sandbox", "kernel"):
            raise InvalidInput(f"kind must be 'sandbox' or 'kernel', not {kind!r}", field="kind")
        resolved = self.resolve_spec(spec, owner)
        mine = self.registry.owned_by(owner)
        if name is not None:
            validate_name(name)
            if any(s.model.name == name for s in mine):
                raise Conflict(f"you already have a sandbox named {name!r}", field="name")
        everyone = [s.model for s in self.registry.all() if s.model.owner]  # pooled ones are nobody's yet
        self.check_quota([s.model for s in mine], resolved, owner, everyone)
        await self.volumes.prepare(owner, resolved)
        return await self.lifecycle.launch(
            self.lifecycle.new(owner, name, resolved, kernel_id, kind), name, self.pooled.take, self.e2b_prefix
        )

    async def _start_unowned(self) -> Sandbox:
        """A started sandbox with the default spec and no owner yet (for the pool)."""
        sandbox = self.lifecycle.new("", None, self.resolve_spec(None))
        await self.lifecycle.start(sandbox)
        return sandbox

    async def remove(self, owner: str, ref: str) -> None:
        await self.lifecycle.remove(self.registry.get(owner, ref))

    async def remove_kernel_sandboxes(self, kernel_id: str) -> builtins.list[str]:
        """Remove the sandboxes tied to a notebook kernel that shut down; their ids."""
        tied = [s for s in self.registry.all() if s.model.kernel_id == kernel_id]
        return await self.lifecycle.remove_all(tied, f"kernel {kernel_id} shut down")

    async def cull_idle(self) -> builtins.list[str]:
        """Remove (or pause: ``idle_action``) sandboxes idle for longer than ``cull_idle_timeout``; their ids."""
        return await self.pausing.idle(self.cull_idle_timeout)

    async def _cull_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cull_interval)
            try:
                await self.cull_idle()
            except Exception:  # keep culling; one failed removal must not end the loop
                self.log.exception("jupyter-sandbox: culling idle sandboxes failed")

    async def shutdown(self, keep_sandboxes: bool = False) -> None:
        """Remove every sandbox (server shutdown); ``keep_sandboxes`` leaves owned ones for the next start."""
        if self._culler is not None:
            self._culler.cancel()
            await asyncio.gather(self._culler, return_exceptions=True)
            self._culler = None
        if self._reaping is not None:  # bounded by adopt_timeout
            await asyncio.gather(self._reaping, return_exceptions=True)
        await self.pool.close()  # pooled sandboxes have no owner: nothing to take back
        if not keep_sandboxes:
            await asyncio.gather(*(self.lifecycle.remove(s) for s in self.registry.all()), return_exceptions=True)
        await self.backend.close()

    async def restart(self, owner: str, ref: str) -> SandboxModel:
        """A fresh sandbox with the same id, spec and contexts; state and files reset."""
        sandbox = self.registry.get(owner, ref)
        sandbox.refuse_if_notebook_kernel("restart its kernel")
        await self.lifecycle.restart(sandbox)
        return sandbox.model

    async def stats(self, owner: str, ref: str) -> dict[str, Any]:
        return await self.lifecycle.stats(self.registry.get(owner, ref), ref)

    async def logs(self, owner: str, ref: str) -> SandboxLogs:
        """The container's and each context's kernel log (the end of each), for the owner."""
        sandbox = self.registry.get(owner, ref)
        return await self.lifecycle.logs(sandbox)

    # -- notebook kernels' sandboxes and E2B (core/kernel_kind.py) -----------------------
    def kernel_connection(self, owner: str, ref: str) -> dict[str, Any]:
        """The connection info of a ``kind="kernel"`` sandbox's kernel (for jupyter_client)."""
        return kernel_kind.kernel_connection(self.registry.get(owner, ref), ref)

    async def kernel_exit_reason(self, owner: str, ref: str) -> str | None:
        """Why the sandbox's (default context's) kernel is gone; None while it runs."""
        sandbox = self.registry.get(owner, ref)
        return await self.kernels.exit_reason(sandbox, sandbox.context(None))

    async def stop_kernel(self, owner: str, ref: str) -> None:
        """Stop a ``kind="kernel"`` sandbox's kernel process; the sandbox stays (for ``restart_kernel``, ``remove``)."""
        await kernel_kind.stop_kernel(self.kernels, self.registry.get(owner, ref))

    async def restart_kernel(self, owner: str, ref: str) -> None:
        """A fresh kernel for a ``kind="kernel"`` sandbox, same addresses and key; a dead container first renewed."""
        await kernel_kind.restart_kernel(self.kernels, self.registry.get(owner, ref), self.log)

    def owner_by_e2b_secret(self, sandbox_id: str, secret: str) -> str:
        """The owner of the sandbox whose e2b_url carries ``secret`` (constant time); else NotFound."""
        return kernel_kind.owner_by_e2b_secret(self.registry, sandbox_id, secret)

    def removed_lately(self, sandbox_id: str, *, owner: str = "", secret: str = "") -> bool:
        return self.registry.removed_lately(sandbox_id, owner=owner, secret=secret)

    # -- contexts and execution (core/sandbox.py) ---------------------------------------
    async def list_contexts(self, owner: str, ref: str) -> builtins.list[ContextModel]:
        """Its contexts, and the default ones E2B lists before they start (core/languages.py)."""
        return await languages.listed_contexts(self.backend, self.registry.get(owner, ref))

    async def create_context(
        self, owner: str, ref: str, language: str | None = None, cwd: str | None = None
    ) -> ContextModel:
        sandbox = self.registry.use(owner, ref)
        sandbox.refuse_if_notebook_kernel("it has one kernel only; run code")
        language = await languages.check_language(self.backend, sandbox.model.id, language)
        most = self.limits_for(owner).max_contexts_per_sandbox
        if len(sandbox.contexts) >= most:
            raise QuotaExceeded(f"a sandbox may have at most {most} contexts")
        model = ContextModel(id=new_id("ctx_"), language=language, cwd=confine(cwd) if cwd else ContextModel(id="").cwd)
        context = await self.kernels.start_context(sandbox, model)
        return context.model

    async def remove_context(self, owner: str, ref: str, context_id: str) -> None:
        sandbox = self.registry.use(owner, ref)
        sandbox.refuse_if_notebook_kernel("shut its kernel down")
        context = sandbox.context(context_id)
        sandbox.drop_context(context)
        self.registry.save(sandbox)
        await self.kernels.stop_context(sandbox, context)

    async def restart_context(self, owner: str, ref: str, context_id: str | None = None) -> ContextModel:
        """A new kernel for the context (same id): variables are lost, files kept."""
        sandbox = self.registry.use(owner, ref)
        sandbox.refuse_if_notebook_kernel("restart its kernel")
        context = sandbox.context(context_id)
        async with context.lock:
            await self.kernels.replace_kernel(sandbox, context)
        return context.model

    async def interrupt(self, owner: str, ref: str, context_id: str | None = None) -> None:
        self.registry.use(owner, ref).interrupt(context_id)

    async def execute(
        self,
        owner: str,
        ref: str,
        code: str,
        *,
        context_id: str | None = None,
        language: str | None = None,
        env_vars: dict[str, str] | None = None,
        timeout: float | None = None,
        on_event: EventSink | None = None,
        allow_stdin: bool = False,
    ) -> Execution:
        """Run ``code`` in a context. Executions in one context queue up (one at a time).

        ``timeout`` (seconds; default: the sandbox's) interrupts the kernel when reached
        and keeps its state. ``on_event`` gets each wire event as it happens. With
        ``allow_stdin``, input() in the code sends an ``input_request`` event (with the
        ``context_id`` to answer through ``answer_input``) and waits for the answer.
        """
        sandbox = self.registry.get(owner, ref)
        sandbox.refuse_if_notebook_kernel("run code")
        await self.pausing.ready_for_code(sandbox)  # a paused one resumes first, or 409 (resume_on_execute)
        if timeout is not None:
            if timeout <= 0:
                raise InvalidInput("timeout must be a positive number of seconds", field="timeout")
            timeout = min(float(timeout), self.limits_for(owner).max_timeout)
        else:
            timeout = sandbox.model.spec.timeout
        # a language without a context: its default one, started on first use (core/languages.py)
        context = await languages.context_for(self.kernels, sandbox, context_id, language)
        sandbox.executing += 1
        self.registry.emit("execution_started", sandbox)
        try:
            return await sandbox.execute(
                self.kernels,
                context,
                code,
                env_vars=env_vars,
                timeout=timeout,
                on_event=on_event,
                allow_stdin=allow_stdin,
                max_output=self.max_output_size,
                outputs=self.backend.outputs,
            )
        finally:
            sandbox.executing -= 1
            if self.registry.holds(sandbox):  # a removed one said "removed" already
                self.registry.emit("execution_finished", sandbox)

    def answer_input(
        self, owner: str, ref: str, context_id: str, value: str | None = None, error: str | None = None
    ) -> None:
        """Answer the input() waiting in a context with ``value``, or fail it with ``error`` (nobody
        can answer). Conflict when no input() waits there."""
        if (value is None) == (error is None):
            raise InvalidInput("send either value (the answer) or error (why nobody can answer)", field="value")
        self.registry.use(owner, ref).answer_input(context_id, value, error)

    # -- files (core/files.py) ----------------------------------------------------------
    async def write_file(self, owner: str, ref: str, path: str, data: bytes) -> None:
        await self.files.write(self.registry.use(owner, ref), path, data)

    async def stream_file(self, owner: str, ref: str, path: str) -> AsyncGenerator[bytes, None]:
        async for chunk in self.files.stream(self.registry.use(owner, ref), path):
            yield chunk

    async def read_file(self, owner: str, ref: str, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream_file(owner, ref, path)])

    async def list_files(self, owner: str, ref: str, path: str) -> builtins.list[dict[str, Any]]:
        return await self.files.list(self.registry.use(owner, ref), path)

    async def remove_file(self, owner: str, ref: str, path: str) -> None:
        await self.files.remove(self.registry.use(owner, ref), path)
