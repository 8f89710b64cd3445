"""SandboxManager: the registry of sandboxes, who owns them, and running code in them."""

from __future__ import annotations

import asyncio
import builtins
import hmac
import os
import queue
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from traitlets import Bool, Float, Instance, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..backends.base import LABEL_PREFIX, SandboxBackend, confine, labelled_id, labels
from ..backends.kernel_client import KernelClient
from ..errors import (
    BackendUnavailable,
    Conflict,
    InvalidInput,
    KernelDied,
    NotFound,
    QuotaExceeded,
    SandboxError,
    TooLarge,
)
from ..models import (
    ConfigDefaults,
    ConfigMaximums,
    ContextLog,
    ContextModel,
    Execution,
    SandboxLogs,
    SandboxModel,
    SandboxSpec,
    ServerConfig,
    SpecRequest,
    format_size,
    new_id,
    now,
    parse_size,
    validate_name,
)
from .collector import EventSink, StdinBridge, run_execute
from .pool import Pool
from .state import SandboxRecords


@dataclass
class _Context:
    model: ContextModel
    kernel_id: str
    client: KernelClient
    key: str = ""  # the kernel's HMAC key: what it takes to reattach after a crash
    connection_info: dict[str, Any] = field(default_factory=dict)  # what jupyter_client needs to reach it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False  # its channels were stopped (context or sandbox removed or restarted)
    stdin: StdinBridge | None = None  # the running execution's, when it may read input
    stdin_connected: bool = False  # the kernel has reached our stdin socket (_connect_stdin)

    def close(self) -> None:
        self.closed = True
        self.client.stop_channels()


@dataclass
class _Sandbox:
    model: SandboxModel
    e2b_secret: str = ""  # the credential in its e2b_url; made when it gets its owner, gone with it
    contexts: dict[str, _Context] = field(default_factory=dict)
    default_context: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    executing: int = 0  # executions running or queued in it


WARM_UP = "get_ipython().display_formatter.format(0)"

# Gets the sandbox's owner and one dict per sandbox event (see server/event_schemas/sandbox/v1.yaml):
# the owner decides who may hear of it ("" for a pooled sandbox, which is nobody's yet). Must not block.
EventListener = Callable[[str, dict[str, Any]], None]


class SandboxManager(LoggingConfigurable):
    """Creates sandboxes for owners, runs code in their contexts, removes them."""

    backend = Instance(SandboxBackend)  # type: ignore[type-abstract]

    server_id = Unicode(
        help="Label on this manager's containers. The server sets it from its slot (identity.py), so it is "
        "unique among live servers and kept across restarts; a manager made alone gets a random one."
    )
    max_sandboxes_per_user = Int(8, help="Sandboxes one user may have at once (429 beyond).").tag(config=True)
    max_memory_per_user = Unicode(
        help="Memory and disk all of one user's sandboxes may ask for together (429 beyond). Default: half the "
        "host's memory."
    ).tag(config=True)
    max_contexts_per_sandbox = Int(8, help="Contexts (kernels) per sandbox.").tag(config=True)
    default_memory = Unicode("1G", help="Memory for sandboxes that ask for none.").tag(config=True)
    max_memory = Unicode(
        help="Largest memory a sandbox may ask for. Default: a quarter of the host's memory (at least 1G, at most 16G)."
    ).tag(config=True)
    default_cpus = Float(1.0, help="CPUs for sandboxes that ask for none.").tag(config=True)
    max_cpus = Float(help="Most CPUs a sandbox may ask for. Default: the host's cores.").tag(config=True)
    default_disk = Unicode(
        "512M",
        help="Writable working-directory size for sandboxes that ask for none (on Docker a tmpfs, held "
        "in memory: the container's memory limit is memory + disk, so a full disk is ENOSPC, not an OOM kill).",
    ).tag(config=True)
    max_disk = Unicode(help="Largest working-directory size a sandbox may ask for. Default: half of max_memory.").tag(
        config=True
    )
    default_pids = Int(256, help="Process limit for sandboxes that ask for none.").tag(config=True)
    max_pids = Int(1024, help="Largest process limit a sandbox may ask for.").tag(config=True)
    default_timeout = Float(300.0, help="Per-execution timeout (s) when neither sandbox nor call sets one.").tag(
        config=True
    )
    max_timeout = Float(3600.0, help="Longest per-execution timeout (s).").tag(config=True)
    allow_network = Bool(
        False,
        help="Whether sandboxes may ask for network access. Before turning it on, see the README's "
        "security model: a Docker sandbox with network joins the 'jupyter-sandbox' network, which "
        "scripts/setup-docker.sh fences off from the host and the cloud metadata address.",
    ).tag(config=True)
    allowed_images = List(Unicode(), help="Images sandboxes may use; empty allows only the default image.").tag(
        config=True
    )
    default_runtime = Unicode("", help="Runtime for sandboxes that ask for none ('' = backend default).").tag(
        config=True
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
        0,
        help="Sandboxes with the default spec kept started, so creating one with the default spec "
        "takes milliseconds instead of a container and kernel start (each waiting one holds its idle "
        "memory, ~40 MB). 0 = none.",
    ).tag(config=True)
    pool_refill_delay = Float(
        1.0,
        help="Seconds between taking a pooled sandbox and starting its replacement, so that the refill (a "
        "container and a kernel start) does not compete with the first executions in the one taken.",
    ).tag(config=True)

    @default("server_id")
    def _server_id_default(self) -> str:
        return secrets.token_hex(8)

    # The maxima fit the host they run on unless configured.
    @default("max_memory")
    def _max_memory_default(self) -> str:
        return format_size(min(max(host_memory() // 4, 1024**3), 16 * 1024**3) // 1024**2 * 1024**2)

    @default("max_disk")
    def _max_disk_default(self) -> str:
        return format_size(parse_size(self.max_memory, "max_memory") // 2 // 1024**2 * 1024**2)

    @default("max_cpus")
    def _max_cpus_default(self) -> float:
        return float(os.cpu_count() or 1)

    @default("max_memory_per_user")
    def _max_memory_per_user_default(self) -> str:
        return format_size(host_memory() // 2 // 1024**2 * 1024**2)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Where E2B's SDK reaches a sandbox (set by the server to {base_url}sandbox/e2b/); each
        # sandbox's e2b_url is this + "<id>/<secret>". Empty: no E2B routes (no server).
        self.e2b_prefix = ""
        # Where the records of this server's sandboxes are kept (set by the server to its slot);
        # None: nothing is kept, and a restart cannot take them back.
        self.records: SandboxRecords | None = None
        self.backend.on_exit = self._sandbox_ended
        self._sandboxes: dict[str, _Sandbox] = {}
        self._file_slots: dict[str, asyncio.Semaphore] = {}
        self._culler: asyncio.Task | None = None
        self._reaping: asyncio.Future | None = None  # taking back the earlier run's sandboxes
        # started sandboxes with the default spec and no owner yet
        self.pool: Pool[_Sandbox] = Pool(
            self.pool_size,
            self._pooled_sandbox,
            self._remove,
            self._why_not_usable,
            self.log,
            refill_delay=self.pool_refill_delay,
        )
        self._listeners: list[EventListener] = []

    # -- events -------------------------------------------------------------------------
    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(owner, event)`` on every sandbox event (created, status, removed, execution_*)."""
        self._listeners.append(listener)

    def _emit(self, action: str, sandbox: _Sandbox) -> None:
        model = sandbox.model
        data = {
            "action": action,
            "sandbox_id": model.id,
            "name": model.name,
            "status": model.status,
            "executing": sandbox.executing,
        }
        for listener in list(self._listeners):
            listener(model.owner, data)

    # -- lookup -------------------------------------------------------------------------
    def _get(self, owner: str, key: str) -> _Sandbox:
        """A sandbox by id or name; another owner's sandbox is simply not found."""
        sandbox = self._sandboxes.get(key)
        if sandbox is None:
            sandbox = next(
                (s for s in self._sandboxes.values() if s.model.name == key and s.model.owner == owner), None
            )
        if sandbox is None or sandbox.model.owner != owner:
            raise NotFound(f"no sandbox {key!r}")
        return sandbox

    def _use(self, owner: str, key: str) -> _Sandbox:
        """``_get`` for an operation that counts as activity (reading the model or stats does not)."""
        sandbox = self._get(owner, key)
        sandbox.model.last_activity = now()
        return sandbox

    def get(self, owner: str, key: str) -> SandboxModel:
        return self._get(owner, key).model

    def list(self, owner: str | None = None) -> list[SandboxModel]:
        return sorted(
            (s.model for s in self._sandboxes.values() if owner is None or s.model.owner == owner),
            key=lambda m: m.created,
        )

    # -- limits -------------------------------------------------------------------------
    @property
    def images(self) -> builtins.list[str]:
        return [self.backend.default_image, *[i for i in self.allowed_images if i != self.backend.default_image]]

    def resolve_spec(self, data: SpecRequest | dict[str, Any] | SandboxSpec | None) -> SandboxSpec:
        """Fill defaults and enforce the configured maxima (InvalidInput names the field)."""
        if isinstance(data, SandboxSpec):
            request = SpecRequest(**data.to_dict())
        elif isinstance(data, SpecRequest):
            request = data
        else:
            request = SpecRequest.parse(data)
        # absent and null both mean "the server's default"
        request = replace(
            request,
            memory=self.default_memory if request.memory is None else request.memory,
            disk=self.default_disk if request.disk is None else request.disk,
            cpus=self.default_cpus if request.cpus is None else request.cpus,
            pids=self.default_pids if request.pids is None else request.pids,
            timeout=self.default_timeout if request.timeout is None else request.timeout,
            runtime=request.runtime or self.default_runtime or None,
        )
        spec = SandboxSpec.from_request(request)
        checks: builtins.list[tuple[str, float, float, Callable[[Any], str]]] = [
            ("memory", spec.memory, parse_size(self.max_memory, "max_memory"), format_size),
            ("disk", spec.disk, parse_size(self.max_disk, "max_disk"), format_size),
            ("cpus", spec.cpus, self.max_cpus, str),
            ("pids", spec.pids, self.max_pids, str),
        ]
        for name, value, limit, show in checks:
            if value > limit:
                raise InvalidInput(f"{name} {show(value)} is above this server's maximum of {show(limit)}", field=name)
        if spec.timeout is not None and spec.timeout > self.max_timeout:
            raise InvalidInput(
                f"timeout {spec.timeout:g}s is above the maximum of {self.max_timeout:g}s", field="timeout"
            )
        if spec.network and not self.allow_network:
            raise InvalidInput("this server does not allow sandboxes with network access", field="network")
        if spec.image is None:
            spec.image = self.backend.default_image
        if spec.image not in self.images:
            raise InvalidInput(f"image {spec.image!r} is not allowed; allowed: {', '.join(self.images)}", field="image")
        return spec

    def describe(self, max_upload_size: int) -> ServerConfig:
        """What a create form needs: this server's defaults, maxima, images and backend (no secrets);
        ``max_upload_size`` is the server's request limit."""
        defaults = self.resolve_spec(None)
        return ServerConfig(
            backend=self.backend.name,
            isolation=self.backend.isolation,
            images=self.images,
            defaults=ConfigDefaults(
                image=defaults.image or self.backend.default_image,
                memory=defaults.memory,
                cpus=defaults.cpus,
                disk=defaults.disk,
                pids=defaults.pids,
                timeout=defaults.timeout,
                network=defaults.network,
            ),
            maximums=ConfigMaximums(
                memory=parse_size(self.max_memory, "max_memory"),
                cpus=self.max_cpus,
                disk=parse_size(self.max_disk, "max_disk"),
                pids=self.max_pids,
                timeout=self.max_timeout,
                sandboxes_per_user=self.max_sandboxes_per_user,
                contexts_per_sandbox=self.max_contexts_per_sandbox,
            ),
            allow_network=self.allow_network,
            max_upload_size=max_upload_size,
        )

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Reap containers a previous run of this server left behind; start the idle culler."""
        if self.cull_idle_timeout > 0 and self._culler is None:
            self._culler = asyncio.ensure_future(self._cull_forever())
        if self.reap_on_start:
            # a task: a shutdown meanwhile waits for it, so no sandbox is taken back after it
            self._reaping = asyncio.ensure_future(self._reap())
            await asyncio.shield(self._reaping)
        self.pool.fill()

    async def _reap(self) -> None:
        """What this server's earlier run left: its sandboxes are taken back (adopt_on_start) when
        their records say how; everything else (one-shot runs, pooled sandboxes) is removed."""
        try:
            leftovers = await self.backend.list_existing({f"{LABEL_PREFIX}.server": self.server_id})
        except SandboxError as e:  # engine down at start: creation will say so clearly later
            self.log.warning("jupyter-sandbox: could not list leftover sandboxes: %s", e.message)
            return
        # all at once: a sandbox whose kernels do not answer must not hold up the others
        results = await asyncio.gather(*(self._take_back(found) for found in leftovers), return_exceptions=True)
        for found, result in zip(leftovers, results, strict=True):
            if isinstance(result, BaseException):
                self.log.error("jupyter-sandbox: leftover %s: %r", labelled_id(found), result)

    async def _take_back(self, found: dict[str, str]) -> None:
        """One leftover: taken back if its record says how, else removed."""
        leftover = labelled_id(found)
        if not leftover or leftover in self._sandboxes:
            return
        record = self.records.load(leftover) if self.records and self.adopt_on_start else None
        if record is not None and await self._adopt(leftover, record):
            return
        self.log.info("jupyter-sandbox: removing leftover %s of %s", leftover, found.get(f"{LABEL_PREFIX}.owner"))
        await self.backend.remove(leftover)
        if self.records:
            self.records.forget(leftover)

    async def _adopt_context(self, sandbox: _Sandbox, saved: dict[str, Any]) -> _Context:
        """Reattach one context's kernel from its record, or start a fresh one (the sandbox says so)."""
        context_model = ContextModel.from_dict(saved["model"])
        try:
            info = await self.backend.attach_kernel(
                sandbox.model.id, saved["kernel_id"], saved["key"], timeout=self.adopt_timeout
            )
            client = await self._connect(sandbox, saved["kernel_id"], info, timeout=self.adopt_timeout)
            return _Context(model=context_model, kernel_id=saved["kernel_id"], client=client, key=saved["key"])
        except SandboxError as e:  # gone, or silent (then stopped): a fresh one, and the sandbox says so
            self.log.warning(
                "jupyter-sandbox: kernel of context %s in %s is gone (%s); restarting it",
                context_model.id,
                sandbox.model.id,
                e,
            )
            context = await self._start_context(sandbox, context_model)
            sandbox.model.status_reason = "restarted after a server restart: some contexts lost their variables"
            return context

    async def _adopt(self, sandbox_id: str, record: dict[str, Any]) -> bool:
        """Take back a sandbox of this server's earlier run, with its kernels where they still run."""
        try:
            model = SandboxModel.from_dict(record["model"])
            if model.kind == "kernel":
                # a notebook kernel's: its server kept no kernel to give it back to (removed instead)
                return False
            await self.backend.adopt(sandbox_id, model.spec)
        except (KeyError, TypeError, ValueError, SandboxError) as e:
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, e)
            return False
        sandbox = _Sandbox(
            model=model, e2b_secret=record.get("e2b_secret", ""), default_context=record.get("default_context")
        )
        model.contexts, model.status, model.status_reason = [], "running", None
        # each context in its own time (bounded by adopt_timeout), kept in the record's order
        try:
            saved_contexts = list(record.get("contexts", []))
        except TypeError as e:
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, e)
            return False
        results = await asyncio.gather(
            *(self._adopt_context(sandbox, saved) for saved in saved_contexts), return_exceptions=True
        )
        contexts = [r for r in results if isinstance(r, _Context)]
        errors = [r for r in results if not isinstance(r, _Context)]
        if errors:  # removed instead, as any leftover
            self.log.warning("jupyter-sandbox: cannot take back sandbox %s: %s", sandbox_id, errors[0])
            for context in contexts:
                context.close()
            if not isinstance(errors[0], (KeyError, TypeError, ValueError, SandboxError)):
                raise errors[0]
            return False
        sandbox.contexts = {c.model.id: c for c in contexts}
        model.contexts = [c.model for c in contexts]
        if self.e2b_prefix and sandbox.e2b_secret:
            model.e2b_url = f"{self.e2b_prefix}{sandbox_id}/{sandbox.e2b_secret}"
        self._sandboxes[sandbox_id] = sandbox
        self._save(sandbox)
        self._emit("created", sandbox)
        self.log.info(
            "jupyter-sandbox: took back sandbox %s (%s) of %s with %d context(s)",
            sandbox_id,
            model.name,
            model.owner,
            len(sandbox.contexts),
        )
        return True

    def _save(self, sandbox: _Sandbox) -> None:
        """Write down what a restarted server needs to take this sandbox back (owned ones only)."""
        if self.records is None or not sandbox.model.owner or sandbox.model.id not in self._sandboxes:
            return
        data = sandbox.model.to_dict()
        data.pop("e2b_url", None)
        self.records.save(
            sandbox.model.id,
            {
                "model": data,
                "e2b_secret": sandbox.e2b_secret,
                "default_context": sandbox.default_context,
                "contexts": [
                    {"model": c.model.to_dict(), "kernel_id": c.kernel_id, "key": c.key}
                    for c in sandbox.contexts.values()
                ],
            },
        )

    def _sandbox_ended(self, sandbox_id: str, reason: str) -> None:
        """The backend saw a sandbox end by itself: its model says so until it is restarted."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is not None and sandbox.model.status == "running":
            sandbox.model.status, sandbox.model.status_reason = "exited", reason
            self.log.info("jupyter-sandbox: sandbox %s of %s ended: %s", sandbox_id, sandbox.model.owner, reason)
            self._emit("status", sandbox)

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
        resolved = self.resolve_spec(spec)
        if name is not None:
            validate_name(name)
            if any(s.model.owner == owner and s.model.name == name for s in self._sandboxes.values()):
                raise Conflict(f"you already have a sandbox named {name!r}", field="name")
        mine = [s.model for s in self._sandboxes.values() if s.model.owner == owner]
        if len(mine) >= self.max_sandboxes_per_user:
            raise QuotaExceeded(
                f"you have {len(mine)} sandboxes, the most this server allows per user; remove one first"
            )
        # a sandbox's disk counts: on Docker it is a tmpfs, held in memory
        held = sum(m.spec.memory + m.spec.disk for m in mine)
        asked, allowed = resolved.memory + resolved.disk, parse_size(self.max_memory_per_user, "max_memory_per_user")
        if held + asked > allowed:
            raise QuotaExceeded(
                f"your sandboxes hold {format_size(held)} of memory and disk; with {format_size(asked)} more you "
                f"would pass this server's limit of {format_size(allowed)} per user; remove one or ask for less"
            )
        sandbox = _Sandbox(model=self._new_model(owner, name, resolved))
        sandbox.model.kernel_id, sandbox.model.kind = kernel_id, kind
        # Registered before any await: the name and the quota slot are taken now, so a second
        # create with the same name gets its 409 even while this one waits for the engine.
        self._sandboxes[sandbox.model.id] = sandbox
        announced = False
        try:
            pooled = await self._take_pooled(resolved, kind)
            if pooled is not None:
                del self._sandboxes[sandbox.model.id]
                model = pooled.model
                model.owner, model.name, model.kernel_id, model.kind = owner, name or model.id, kernel_id, kind
                model.created = model.last_activity = now()
                self._sandboxes[model.id] = pooled
                self._mind_kind(pooled)
                self._give_e2b_url(pooled)
                self._save(pooled)
                self.log.info("jupyter-sandbox: %s took sandbox %s (%s) from the pool", owner, model.id, model.name)
                self._emit("created", pooled)
                return model
            self._emit("created", sandbox)  # "starting": clients show it while the engine works
            announced = True
            await self._start(sandbox)
            self._mind_kind(sandbox)
        except BaseException:
            if self._sandboxes.pop(sandbox.model.id, None) is not None and announced:
                sandbox.model.status = "removing"
                self._emit("removed", sandbox)
            raise
        self._give_e2b_url(sandbox)
        self._save(sandbox)
        self._emit("status", sandbox)
        model = sandbox.model
        self.log.info(
            "jupyter-sandbox: %s created sandbox %s (%s) on %s", owner, model.id, model.name, self.backend.name
        )
        return model

    @staticmethod
    def _mind_kind(sandbox: _Sandbox) -> None:
        if sandbox.model.kind == "kernel":
            # The notebook reads this kernel's output; our own client keeps only shell and
            # control (readiness, interrupt). Left open, iopub would queue every output unread.
            for context in sandbox.contexts.values():
                context.client.iopub_channel.close()

    @staticmethod
    def _not_a_kernel(sandbox: _Sandbox, what: str) -> None:
        """Conflict for operations that would pull a notebook's kernel from under it."""
        if sandbox.model.kind == "kernel":
            raise Conflict(
                f"sandbox {sandbox.model.name!r} runs the whole kernel of a notebook (kernel {sandbox.model.kernel_id}); "
                f"{what} from the notebook instead (run a cell, restart or shut down its kernel)"
            )

    def kernel_connection(self, owner: str, key: str) -> dict[str, Any]:
        """The connection info of a ``kind="kernel"`` sandbox's kernel (for jupyter_client)."""
        sandbox = self._get(owner, key)
        if sandbox.model.kind != "kernel":
            raise Conflict(f"sandbox {key!r} is not a notebook kernel's sandbox")
        return dict(self._context(sandbox, None).connection_info)

    async def kernel_exit_reason(self, owner: str, key: str) -> str | None:
        """Why the sandbox's (default context's) kernel is gone; None while it runs."""
        sandbox = self._get(owner, key)
        return await self.backend.kernel_exit_reason(sandbox.model.id, self._context(sandbox, None).kernel_id)

    async def stop_kernel(self, owner: str, key: str) -> None:
        """Stop a ``kind="kernel"`` sandbox's kernel process; the sandbox stays (``restart_kernel``
        starts a new one, ``remove`` removes it)."""
        sandbox = self._get(owner, key)
        context = self._context(sandbox, None)
        context.close()
        await self.backend.stop_kernel(sandbox.model.id, context.kernel_id)

    async def restart_kernel(self, owner: str, key: str) -> None:
        """A fresh kernel process for a ``kind="kernel"`` sandbox, at the same addresses with the
        same key (the notebook's open connections reach it). A sandbox whose container died
        (out of memory, process limit) gets a fresh one first."""
        sandbox = self._get(owner, key)
        context = self._context(sandbox, None)
        async with sandbox.lock:
            sandbox.model.status = "restarting"
            try:
                try:
                    await self._replace_kernel(sandbox, context, same_address=True)
                except (KernelDied, BackendUnavailable, NotFound) as e:
                    # e.g. the container stopped (out of memory, process limit): no exec in it works
                    self.log.info(
                        "jupyter-sandbox: sandbox %s cannot start a kernel (%s); restarting its container",
                        sandbox.model.id,
                        e,
                    )
                    await self.backend.restart(sandbox.model.id)
                    await self._replace_kernel(sandbox, context, same_address=True)
            except BaseException as e:
                sandbox.model.status, sandbox.model.status_reason = "exited", f"its kernel could not be restarted: {e}"
                raise
            self._mind_kind(sandbox)
            sandbox.model.status = "running"
            sandbox.model.last_activity = now()

    def _give_e2b_url(self, sandbox: _Sandbox) -> None:
        if self.e2b_prefix:
            sandbox.e2b_secret = secrets.token_urlsafe(32)
            sandbox.model.e2b_url = f"{self.e2b_prefix}{sandbox.model.id}/{sandbox.e2b_secret}"

    def owner_by_e2b_secret(self, sandbox_id: str, secret: str) -> str:
        """The owner of the sandbox whose e2b_url carries ``secret`` (compared in constant time);
        NotFound for a wrong secret, as for an unknown sandbox."""
        sandbox = self._sandboxes.get(sandbox_id)
        expected = sandbox.e2b_secret if sandbox else ""
        if not sandbox or not expected or not hmac.compare_digest(expected.encode(), secret.encode()):
            raise NotFound(f"no sandbox {sandbox_id!r} (or a wrong secret in the URL)")
        return sandbox.model.owner

    def _new_model(self, owner: str, name: str | None, spec: SandboxSpec) -> SandboxModel:
        sandbox_id = new_id("sbx_")
        created = now()
        return SandboxModel(
            id=sandbox_id,
            name=name or sandbox_id,
            owner=owner,
            status="starting",
            backend=self.backend.name,
            spec=spec,
            created=created,
            last_activity=created,
            isolation=self.backend.isolation,
        )

    async def _start(self, sandbox: _Sandbox) -> None:
        """Start the container (or process group) and its default context."""
        model = sandbox.model
        # a pooled sandbox's owner label is "": its owner comes later
        marks = labels(self.server_id, model.owner, sandbox=model.id)
        try:
            await self.backend.create(model.id, model.spec, marks)
            context = await self._start_context(sandbox, ContextModel(id=new_id("ctx_")))
            sandbox.default_context = context.model.id
        except BaseException:
            await self.backend.remove(model.id)
            raise
        model.status = "running"

    # -- the pool of started sandboxes ---------------------------------------------------
    async def _pooled_sandbox(self) -> _Sandbox:
        sandbox = _Sandbox(model=self._new_model("", None, self.resolve_spec(None)))
        await self._start(sandbox)
        # A fresh kernel's first execution pays for what IPython sets up on first use (the display
        # formatters above all): pay it now, silently (no history, no execution count, no output).
        try:
            await self._silent(sandbox.contexts[sandbox.default_context or ""], WARM_UP)
        except BaseException:
            await self._remove(sandbox)
            raise
        return sandbox

    async def _why_not_usable(self, sandbox: _Sandbox) -> str | None:
        context = sandbox.contexts[sandbox.default_context or ""]
        return await self.backend.kernel_exit_reason(sandbox.model.id, context.kernel_id)

    async def _take_pooled(self, spec: SandboxSpec, kind: str) -> _Sandbox | None:
        """A started sandbox from the pool when ``spec`` is the default one (for code sent through
        the API: a notebook's kernel has its debugger, which pooled kernels have not)."""
        if not self.pool.ready or kind != "sandbox" or spec != self.resolve_spec(None):
            return None
        return await self.pool.take()

    @staticmethod
    def _debugger(sandbox: _Sandbox) -> bool:
        """Only a notebook's own kernel gets ipykernel's debugger (JupyterLab's debugger panel talks
        to it); code sent through the API never uses it, and kernels start faster without it."""
        return sandbox.model.kind == "kernel"

    async def _start_context(
        self, sandbox: _Sandbox, model: ContextModel, kernel_id: str | None = None, key: bytes | None = None
    ) -> _Context:
        kernel_id = kernel_id or new_id()[:12]
        info = await self.backend.start_kernel(
            sandbox.model.id, kernel_id, cwd=model.cwd, key=key, debugger=self._debugger(sandbox)
        )
        context = _Context(
            model=model,
            kernel_id=kernel_id,
            client=await self._connect(sandbox, kernel_id, info),
            key=_key(info),
            connection_info=dict(info),
        )
        sandbox.contexts[model.id] = context
        sandbox.model.contexts = [c.model for c in sandbox.contexts.values()]
        self._save(sandbox)
        return context

    async def _connect(
        self, sandbox: _Sandbox, kernel_id: str, info: dict[str, Any], timeout: float | None = None
    ) -> KernelClient:
        """A client connected to a started kernel, once it answers within ``timeout`` seconds
        (kernel_ready_timeout by default); the kernel is stopped if it never does."""
        client = await self.backend.kernel_client(sandbox.model.id, kernel_id, info)
        try:
            await self._wait_ready(sandbox.model.id, kernel_id, client, timeout or self.kernel_ready_timeout)
        except BaseException:
            client.stop_channels()
            await self.backend.stop_kernel(sandbox.model.id, kernel_id)
            raise
        return client

    async def _replace_kernel(self, sandbox: _Sandbox, context: _Context, same_address: bool = False) -> None:
        """A fresh kernel for ``context``, in place (its lock holder keeps using the same object).
        ``same_address``: at the old kernel's addresses with its key (a notebook's open connections
        reach the new one)."""
        context.close()
        await self.backend.stop_kernel(sandbox.model.id, context.kernel_id)
        kernel_id, key = (context.kernel_id, context.key.encode()) if same_address else (new_id()[:12], None)
        info = await self.backend.start_kernel(
            sandbox.model.id, kernel_id, cwd=context.model.cwd, key=key, debugger=self._debugger(sandbox)
        )
        context.client = await self._connect(sandbox, kernel_id, info)
        context.kernel_id, context.key, context.closed = kernel_id, _key(info), False
        context.connection_info, context.stdin_connected = dict(info), False
        self._save(sandbox)

    async def _wait_ready(self, sandbox_id: str, kernel_id: str, client: KernelClient, timeout: float) -> None:
        """Ask for kernel_info until the kernel answers; fail fast, with its words, if it exits.

        (jupyter_client's wait_for_ready gives up as soon as the heartbeat is silent, which a
        kernel still starting under gVisor is for a few seconds.)
        """
        deadline = time.monotonic() + timeout
        while True:
            msg_id = client.kernel_info()
            answer_by = time.monotonic() + 1.0
            while time.monotonic() < answer_by:
                try:
                    reply = await client.get_shell_msg(timeout=max(answer_by - time.monotonic(), 0.01))
                except queue.Empty:
                    break
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    if await self._iopub_connected(client):
                        return
                    break
            reason = await self.backend.kernel_exit_reason(sandbox_id, kernel_id)
            if reason:
                raise KernelDied(f"the kernel did not start: {reason}")
            if time.monotonic() > deadline:
                raise KernelDied(f"the kernel did not answer within {timeout:g}s")

    @staticmethod
    async def _iopub_connected(client: KernelClient, timeout: float = 1.0) -> bool:
        # ZMQ's slow joiner: iopub (SUB) misses what the kernel publishes before the
        # subscription lands, so a kernel answering on shell can still lose the first
        # execution's outputs. The kernel publishes a status for every request: hearing
        # one means outputs will arrive. (Stale messages are ignored by parent msg_id.)
        try:
            await client.get_iopub_msg(timeout=timeout)
            return True
        except queue.Empty:
            return False

    async def _stop_context(self, sandbox: _Sandbox, context: _Context) -> None:
        context.close()
        await self.backend.stop_kernel(sandbox.model.id, context.kernel_id)

    async def remove(self, owner: str, key: str) -> None:
        sandbox = self._get(owner, key)
        await self._remove(sandbox)

    async def _remove(self, sandbox: _Sandbox) -> None:
        sandbox.model.status = "removing"
        if self._sandboxes.pop(sandbox.model.id, None) is not None:  # pooled ones were never announced
            self._emit("removed", sandbox)
        if self.records:
            self.records.forget(sandbox.model.id)
        for context in list(sandbox.contexts.values()):
            context.close()
        await self.backend.remove(sandbox.model.id)
        self.log.info("jupyter-sandbox: removed sandbox %s of %s", sandbox.model.id, sandbox.model.owner)

    async def remove_kernel_sandboxes(self, kernel_id: str) -> builtins.list[str]:
        """Remove the sandboxes tied to a notebook kernel that shut down; their ids."""
        tied = [s for s in list(self._sandboxes.values()) if s.model.kernel_id == kernel_id]
        for sandbox in tied:
            self.log.info("jupyter-sandbox: kernel %s shut down; removing its sandbox %s", kernel_id, sandbox.model.id)
            await self._remove(sandbox)
        return [s.model.id for s in tied]

    async def cull_idle(self) -> builtins.list[str]:
        """Remove sandboxes idle for longer than ``cull_idle_timeout``; their ids."""
        deadline = now() - self.cull_idle_timeout
        idle = [
            s
            for s in list(self._sandboxes.values())
            # a notebook kernel's sandbox lives as long as its kernel: the server's kernel culling decides
            if s.model.kind == "sandbox"
            and s.model.last_activity < deadline
            and s.model.status == "running"
            and not s.lock.locked()
            and not any(c.lock.locked() for c in s.contexts.values())
        ]
        for sandbox in idle:
            self.log.info(
                "jupyter-sandbox: culling sandbox %s of %s, idle for %.0f s",
                sandbox.model.id,
                sandbox.model.owner,
                now() - sandbox.model.last_activity,
            )
            await self._remove(sandbox)
        return [s.model.id for s in idle]

    async def _cull_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cull_interval)
            try:
                await self.cull_idle()
            except Exception:  # keep culling; one failed removal must not end the loop
                self.log.exception("jupyter-sandbox: culling idle sandboxes failed")

    async def shutdown(self) -> None:
        """Remove every sandbox (server shutdown)."""
        if self._culler is not None:
            self._culler.cancel()
            await asyncio.gather(self._culler, return_exceptions=True)
            self._culler = None
        if self._reaping is not None:  # bounded by adopt_timeout
            await asyncio.gather(self._reaping, return_exceptions=True)
        await self.pool.close()
        await asyncio.gather(*(self._remove(s) for s in list(self._sandboxes.values())), return_exceptions=True)
        await self.backend.close()

    async def restart(self, owner: str, key: str) -> SandboxModel:
        """A fresh sandbox with the same id, spec and contexts; state and files reset."""
        sandbox = self._get(owner, key)
        self._not_a_kernel(sandbox, "restart its kernel")
        async with sandbox.lock:
            sandbox.model.status = "restarting"
            self._emit("status", sandbox)
            models = [c.model for c in sandbox.contexts.values()]
            for context in sandbox.contexts.values():
                context.close()
            sandbox.contexts.clear()
            await self.backend.restart(sandbox.model.id)
            for model in models:
                await self._start_context(sandbox, model)
            sandbox.model.status, sandbox.model.status_reason = "running", None
            sandbox.model.last_activity = now()
            self._save(sandbox)
            self._emit("status", sandbox)
        return sandbox.model

    async def interrupt(self, owner: str, key: str, context_id: str | None = None) -> None:
        sandbox = self._use(owner, key)
        targets = [self._context(sandbox, context_id)] if context_id else list(sandbox.contexts.values())
        for context in targets:
            self._interrupt(context)

    @staticmethod
    def _interrupt(context: _Context) -> None:
        if context.closed:
            return  # its kernel is being stopped anyway
        # ipykernel handles interrupt_request on its control thread even while busy, so
        # this works the same for containers (no signal path from the host) and processes.
        msg = context.client.session.msg("interrupt_request", {})
        context.client.control_channel.send(msg)

    async def stats(self, owner: str, key: str) -> dict[str, Any]:
        sandbox = self._get(owner, key)
        try:
            return await self.backend.stats(sandbox.model.id)
        except Exception:
            if sandbox.model.id not in self._sandboxes:  # removed while the engine was asked
                raise NotFound(f"no sandbox {key!r}") from None
            raise

    async def logs(self, owner: str, key: str) -> SandboxLogs:
        """The container's and each context's kernel log (the end of each), for the owner."""
        sandbox = self._get(owner, key)
        contexts = list(sandbox.contexts.values())
        logs = await self.backend.logs(sandbox.model.id, [c.kernel_id for c in contexts])
        return SandboxLogs(
            container=logs["container"],
            contexts=[
                ContextLog(id=c.model.id, language=c.model.language, kernel_log=logs["kernels"].get(c.kernel_id, ""))
                for c in contexts
            ],
        )

    # -- contexts -----------------------------------------------------------------------
    def _context(self, sandbox: _Sandbox, context_id: str | None) -> _Context:
        cid = context_id or sandbox.default_context
        context = sandbox.contexts.get(cid) if cid else None
        if context is None:
            raise NotFound(f"no context {context_id!r} in sandbox {sandbox.model.id}")
        return context

    def list_contexts(self, owner: str, key: str) -> builtins.list[ContextModel]:
        return list(self._get(owner, key).model.contexts)

    async def create_context(
        self, owner: str, key: str, language: str | None = None, cwd: str | None = None
    ) -> ContextModel:
        sandbox = self._use(owner, key)
        self._not_a_kernel(sandbox, "it has one kernel only; run code")
        _check_language(language)
        if len(sandbox.contexts) >= self.max_contexts_per_sandbox:
            raise QuotaExceeded(f"a sandbox may have at most {self.max_contexts_per_sandbox} contexts")
        model = ContextModel(id=new_id("ctx_"), cwd=confine(cwd) if cwd else ContextModel(id="").cwd)
        context = await self._start_context(sandbox, model)
        return context.model

    async def remove_context(self, owner: str, key: str, context_id: str) -> None:
        sandbox = self._use(owner, key)
        self._not_a_kernel(sandbox, "shut its kernel down")
        context = self._context(sandbox, context_id)
        sandbox.contexts.pop(context.model.id, None)
        sandbox.model.contexts = [c.model for c in sandbox.contexts.values()]
        if sandbox.default_context == context.model.id:
            sandbox.default_context = next(iter(sandbox.contexts), None)
        self._save(sandbox)
        await self._stop_context(sandbox, context)

    async def restart_context(self, owner: str, key: str, context_id: str | None = None) -> ContextModel:
        """A new kernel for the context (same id): variables are lost, files kept."""
        sandbox = self._use(owner, key)
        self._not_a_kernel(sandbox, "restart its kernel")
        context = self._context(sandbox, context_id)
        async with context.lock:
            await self._replace_kernel(sandbox, context)
        return context.model

    # -- execution ----------------------------------------------------------------------
    async def execute(
        self,
        owner: str,
        key: str,
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
        sandbox = self._get(owner, key)
        self._not_a_kernel(sandbox, "run code")
        _check_language(language)
        if timeout is not None:
            if timeout <= 0:
                raise InvalidInput("timeout must be a positive number of seconds", field="timeout")
            timeout = min(float(timeout), self.max_timeout)
        else:
            timeout = sandbox.model.spec.timeout
        context = self._context(sandbox, context_id)
        sandbox.executing += 1
        self._emit("execution_started", sandbox)
        try:
            return await self._execute(sandbox, context, code, env_vars, timeout, on_event, allow_stdin)
        finally:
            sandbox.executing -= 1
            if self._sandboxes.get(sandbox.model.id) is sandbox:  # a removed one said "removed" already
                self._emit("execution_finished", sandbox)

    async def _execute(
        self,
        sandbox: _Sandbox,
        context: _Context,
        code: str,
        env_vars: dict[str, str] | None,
        timeout: float | None,
        on_event: EventSink | None,
        allow_stdin: bool,
    ) -> Execution:
        async with context.lock:
            sandbox.model.last_activity = now()
            reason = await self.backend.kernel_exit_reason(sandbox.model.id, context.kernel_id)
            if reason:
                raise KernelDied(f"{reason} (restart the context or the sandbox)")
            if env_vars:
                await self._silent(
                    context,
                    "import os as _jsbx_os\n"
                    f"_jsbx_env = {{k: _jsbx_os.environ.get(k) for k in {list(env_vars)!r}}}\n"
                    f"_jsbx_os.environ.update({env_vars!r})",
                )
            if allow_stdin:
                await self._connect_stdin(context)
                context.stdin = StdinBridge(context.client, lambda: self._interrupt(context))
                on_event = _with_context_id(on_event, context.model.id)
            try:
                execution = await run_execute(
                    context.client,
                    code,
                    on_event=on_event,
                    timeout=timeout,
                    check_dead=lambda: self.backend.kernel_exit_reason(sandbox.model.id, context.kernel_id),
                    interrupt=lambda: asyncio.sleep(0, self._interrupt(context)),
                    # a kernel deaf to interrupts would wedge the context: it gets a new one
                    unresponsive=lambda: self._replace_kernel(sandbox, context),
                    max_output=self.max_output_size,
                    stdin=context.stdin,
                    outputs=self.backend.outputs,
                )
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if context.closed and not (task and getattr(task, "cancelling", lambda: 1)()):
                    # Not our caller: stopping the channels cancelled the pending receive.
                    raise KernelDied("the sandbox or context was removed or restarted while this code ran") from None
                # The caller went away (e.g. its HTTP client disconnected): stop its code too,
                # so the context is free for the next execution in the queue.
                self._interrupt(context)
                raise
            except Exception:
                if context.closed:  # its channels were stopped under it (jupyter_client then asserts)
                    raise KernelDied("the sandbox or context was removed or restarted while this code ran") from None
                raise
            finally:
                context.stdin = None
                if (
                    env_vars
                    and not context.closed
                    and not await self.backend.kernel_exit_reason(sandbox.model.id, context.kernel_id)
                ):
                    await self._silent(
                        context,
                        "[_jsbx_os.environ.pop(k, None) if v is None else "
                        "_jsbx_os.environ.__setitem__(k, v) for k, v in _jsbx_env.items()]",
                    )
            sandbox.model.last_activity = now()
        return execution

    def answer_input(
        self, owner: str, key: str, context_id: str, value: str | None = None, error: str | None = None
    ) -> None:
        """Answer the input() waiting in a context with ``value``, or fail it with ``error`` (nobody
        can answer). Conflict when no input() waits there."""
        if (value is None) == (error is None):
            raise InvalidInput("send either value (the answer) or error (why nobody can answer)", field="value")
        sandbox = self._use(owner, key)
        context = self._context(sandbox, context_id)
        bridge = context.stdin
        if bridge is None or not bridge.waiting:
            raise Conflict(f"no input() is waiting for an answer in context {context_id!r}")
        if value is not None:
            bridge.answer(value)
        else:
            bridge.refuse(error or "nobody could answer the input request")

    async def _connect_stdin(self, context: _Context) -> None:
        """Make sure the kernel reaches our stdin socket before code may ask for input.

        Our socket connects on its own retry timer after the kernel binds, and until it is up the
        kernel's ROUTER drops an input request addressed to it: the code would wait forever. A
        silent ``input()`` answered proves the path; one not asked within a second is interrupted
        and tried again.
        """
        if context.stdin_connected:
            return
        client = context.client
        for _ in range(30):
            msg_id = client.execute("input()", silent=True, store_history=False, allow_stdin=True)
            try:
                while True:
                    request = await client.get_stdin_msg(timeout=1.0)
                    if request.get("parent_header", {}).get("msg_id") == msg_id:
                        client.input("")
                        context.stdin_connected = True
                        break
            except queue.Empty:
                self._interrupt(context)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    reply = await client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.01))
                except queue.Empty:
                    break
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    break
            if context.stdin_connected:
                return
        raise KernelDied("the kernel never reached this server's stdin socket; restart the context")

    @staticmethod
    async def _silent(context: _Context, code: str) -> None:
        msg_id = context.client.execute(code, silent=True, store_history=False, allow_stdin=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = await context.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 0.01))
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return

    # -- files --------------------------------------------------------------------------
    def _file_slot(self, owner: str) -> asyncio.Semaphore:
        """One user's share of file transfers: a user's stuck ones never hold up another's."""
        return self._file_slots.setdefault(owner, asyncio.Semaphore(self.max_file_transfers_per_user))

    async def write_file(self, owner: str, key: str, path: str, data: bytes) -> None:
        sandbox = self._use(owner, key)
        if len(data) > sandbox.model.spec.disk:
            raise TooLarge(
                f"{len(data)} bytes do not fit on the sandbox's disk of {format_size(sandbox.model.spec.disk)}"
            )
        async with self._file_slot(owner):
            await self.backend.write_file(sandbox.model.id, path, data)

    async def stream_file(self, owner: str, key: str, path: str) -> AsyncIterator[bytes]:
        sandbox = self._use(owner, key)
        async with self._file_slot(owner):
            async for chunk in self.backend.stream_file(sandbox.model.id, path):
                yield chunk

    async def read_file(self, owner: str, key: str, path: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream_file(owner, key, path)])

    async def list_files(self, owner: str, key: str, path: str) -> builtins.list[dict[str, Any]]:
        sandbox = self._use(owner, key)
        async with self._file_slot(owner):
            return await self.backend.list_files(sandbox.model.id, path)

    async def remove_file(self, owner: str, key: str, path: str) -> None:
        sandbox = self._use(owner, key)
        async with self._file_slot(owner):
            await self.backend.remove_file(sandbox.model.id, path)


def _key(info: dict[str, Any]) -> str:
    key = info.get("key", "")
    return key.decode() if isinstance(key, bytes) else key


def host_memory() -> int:
    """Bytes of RAM on this host."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _with_context_id(sink: EventSink | None, context_id: str) -> EventSink | None:
    """``sink`` given input requests that name the context to answer in."""
    if sink is None:
        return None

    def send(event):
        if event.get("type") == "input_request":
            event = {**event, "context_id": context_id}
        return sink(event)

    return send


def _check_language(language: str | None) -> None:
    if language not in (None, "", "python", "python3"):
        raise InvalidInput(f"language {language!r} is not available; sandboxes run python", field="language")
