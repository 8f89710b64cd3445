"""One sandbox and its contexts (one kernel each): the state the manager keeps for it, its locks,
and what is done to one sandbox at a time: run code in a context, interrupt it, answer its
input(). Starting and replacing kernels is core/kernels.py's; owners and lookup, core/registry.py's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backends.kernel_client import KernelClient
from ..errors import Conflict, KernelDied, NotFound
from ..models import ContextModel, Execution, SandboxModel, now
from ..outputs import OutputPolicy
from . import kernel_code
from .collector import Event, EventSink
from .execute_request import LATE_OUTPUT_GRACE, run_execute
from .stdin import StdinBridge

if TYPE_CHECKING:  # kernels.py builds Contexts: it imports this module
    from .kernels import KernelPlumbing


@dataclass
class Context:
    """One kernel of a sandbox, and the client this server reaches it with."""

    model: ContextModel
    kernel_id: str
    client: KernelClient
    hmac_key: str = ""  # the kernel's message-signing key: what it takes to reattach after a crash
    connection_info: dict[str, Any] = field(default_factory=dict)  # what jupyter_client needs to reach it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one execution at a time
    closed: bool = False  # its channels were stopped (context or sandbox removed or restarted)
    stdin: StdinBridge | None = None  # the running execution's, when it may read input
    stdin_connected: bool = False  # the kernel has reached our stdin socket (KernelPlumbing.connect_stdin)

    def close(self) -> None:
        if self.closed:  # once (a paused sandbox's contexts are closed, some with no client at all)
            return
        self.closed = True
        self.client.stop_channels()

    def interrupt(self) -> None:
        if self.closed:
            return  # its kernel is being stopped anyway
        # ipykernel handles interrupt_request on its control thread even while busy, so
        # this works the same for containers (no signal path from the host) and processes.
        msg = self.client.session.msg("interrupt_request", {})
        self.client.control_channel.send(msg)


@dataclass
class Sandbox:
    """A sandbox: its model (what the API shows), its contexts and its default one."""

    model: SandboxModel
    e2b_secret: str = ""  # the credential in its e2b_url; made when it gets its owner, gone with it
    contexts: dict[str, Context] = field(default_factory=dict)
    default_context: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while the sandbox restarts
    defaults_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while a language's default context starts
    executing: int = 0  # executions running or queued in it

    def context(self, context_id: str | None) -> Context:
        """A context by id; None: the default one."""
        cid = context_id or self.default_context
        context = self.contexts.get(cid) if cid else None
        if context is None:
            raise NotFound(f"no context {context_id!r} in sandbox {self.model.id}")
        return context

    def add_context(self, context: Context) -> None:
        self.contexts[context.model.id] = context
        self.model.contexts = [c.model for c in self.contexts.values()]

    def drop_context(self, context: Context) -> None:
        self.contexts.pop(context.model.id, None)
        self.model.contexts = [c.model for c in self.contexts.values()]
        if self.default_context == context.model.id:
            self.default_context = next(iter(self.contexts), None)

    def close_contexts(self) -> None:
        for context in list(self.contexts.values()):
            context.close()

    @property
    def busy(self) -> bool:
        """Restarting, or running or queueing code in a context."""
        return self.executing > 0 or self.lock.locked() or any(c.lock.locked() for c in self.contexts.values())

    def idle_since(self, deadline: float) -> bool:
        """A running API sandbox with no activity since ``deadline`` and no code running or queued
        (a notebook kernel's sandbox lives as long as its kernel: the server's kernel culling decides)."""
        return (
            not self.is_notebook_kernel
            and self.model.last_activity < deadline
            and self.model.status == "running"
            and not self.busy
        )

    @property
    def is_notebook_kernel(self) -> bool:
        """Its kernel is a notebook's whole kernel (kind "kernel")."""
        return self.model.kind == "kernel"

    def refuse_if_notebook_kernel(self, what: str) -> None:
        """Conflict for operations that would pull a notebook's kernel from under it."""
        if self.is_notebook_kernel:
            raise Conflict(
                f"sandbox {self.model.name!r} runs the whole kernel of a notebook (kernel {self.model.kernel_id}); "
                f"{what} from the notebook instead (run a cell, restart or shut down its kernel)"
            )

    def close_unread_iopub(self) -> None:
        """A notebook kernel's sandbox: the notebook reads its output, so our own clients keep only
        shell and control (readiness, interrupt). Left open, iopub would queue every output unread."""
        if self.is_notebook_kernel:
            for context in self.contexts.values():
                context.client.iopub_channel.close()

    def interrupt(self, context_id: str | None = None) -> None:
        """Interrupt one context's kernel, or (no id) every context's."""
        targets = [self.context(context_id)] if context_id else list(self.contexts.values())
        for context in targets:
            context.interrupt()

    def answer_input(self, context_id: str, value: str | None, error: str | None) -> None:
        """Answer the input() waiting in a context with ``value``, or fail it with ``error`` (one of
        the two: SandboxManager.answer_input checks)."""
        bridge = self.context(context_id).stdin
        if bridge is None or not bridge.waiting:
            raise Conflict(f"no input() is waiting for an answer in context {context_id!r}")
        if value is not None:
            bridge.answer(value)
        else:
            bridge.refuse(error or "nobody could answer the input request")

    async def execute(
        self,
        kernels: KernelPlumbing,
        context: Context,
        code: str,
        *,
        env_vars: dict[str, str] | None,
        timeout: float | None,
        on_event: EventSink | None,
        allow_stdin: bool,
        max_output: int,
        outputs: OutputPolicy,
    ) -> Execution:
        """Run ``code`` in ``context`` once the executions queued before it are done."""
        async with context.lock:
            self.model.last_activity = now()
            reason = await kernels.exit_reason(self, context)
            if reason:
                raise KernelDied(f"{reason} (restart the context or the sandbox)")
            if env_vars:
                await kernels.run_silently(context, kernel_code.language_swap_env(env_vars, context.model.language))
            # the stdin path is proved with Python's input(): other languages' code gets no stdin
            if allow_stdin and context.model.language == "python":
                await kernels.connect_stdin(context)
                context.stdin = StdinBridge(context.client, context.interrupt)
                on_event = with_context_id(on_event, context.model.id)

            async def interrupt() -> None:
                context.interrupt()

            try:
                execution = await run_execute(
                    context.client,
                    code,
                    on_event=on_event,
                    timeout=timeout,
                    check_dead=lambda: kernels.exit_reason(self, context),
                    interrupt=interrupt,
                    # a kernel deaf to interrupts would wedge the context: it gets a new one
                    unresponsive=lambda: kernels.replace_kernel(self, context),
                    max_output=max_output,
                    stdin=context.stdin,
                    outputs=outputs,
                    late_output=LATE_OUTPUT_GRACE.get(context.model.language, 0.0),
                )
            except asyncio.CancelledError:
                task = asyncio.current_task()
                # (Task.cancelling is Python 3.11+: on 3.10 a cancel is taken as the caller's)
                if context.closed and not (task and getattr(task, "cancelling", lambda: 1)()):
                    # Not our caller: stopping the channels cancelled the pending receive.
                    raise KernelDied("the sandbox or context was removed or restarted while this code ran") from None
                # The caller went away (e.g. its HTTP client disconnected): stop its code too,
                # so the context is free for the next execution in the queue.
                context.interrupt()
                raise
            except Exception:
                if context.closed:  # its channels were stopped under it (jupyter_client then asserts)
                    raise KernelDied("the sandbox or context was removed or restarted while this code ran") from None
                raise
            finally:
                context.stdin = None
                if env_vars and not context.closed and not await kernels.exit_reason(self, context):
                    await kernels.run_silently(
                        context, kernel_code.language_restore_env(env_vars, context.model.language)
                    )
            self.model.last_activity = now()
        return execution


def with_context_id(sink: EventSink | None, context_id: str) -> EventSink | None:
    """``sink`` given input requests that name the context to answer in."""
    if sink is None:
        return None

    def send(event: Event) -> Any:
        if event.get("type") == "input_request":
            event = {**event, "context_id": context_id}
        return sink(event)

    return send
