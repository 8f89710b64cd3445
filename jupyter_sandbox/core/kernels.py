"""Kernel plumbing: starting a context's kernel through the backend, connecting this server's
client to it and waiting until it answers, replacing or stopping it, reaching its stdin, and
running code in it silently. The backend says where a kernel runs; this module talks to it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

from ..backends.base import SandboxBackend
from ..backends.kernel_client import KernelClient
from ..errors import KernelDied
from ..models import ContextModel, new_id
from .replies import reply_to
from .sandbox import Context, Sandbox

SILENT_REPLY_TIMEOUT = 10.0  # seconds to wait for the reply to code run silently


class KernelPlumbing:
    """The kernels of every sandbox of one manager. ``save`` writes down a sandbox's record when
    its kernels change; ``ready_timeout`` is read on each start (kernel_ready_timeout)."""

    def __init__(
        self, backend: SandboxBackend, save: Callable[[Sandbox], None], ready_timeout: Callable[[], float]
    ) -> None:
        self.backend = backend
        self.save = save
        self.ready_timeout = ready_timeout

    async def exit_reason(self, sandbox: Sandbox, context: Context) -> str | None:
        """Why the context's kernel is gone; None while it runs."""
        return await self.backend.kernel_exit_reason(sandbox.model.id, context.kernel_id)

    async def start_context(self, sandbox: Sandbox, model: ContextModel) -> Context:
        """A new kernel (with a new key) for the context ``model``, added to the sandbox (and its record)."""
        kernel_id = new_id()[:12]
        # Only a notebook's own kernel gets ipykernel's debugger (JupyterLab's debugger panel talks to
        # it); code sent through the API never uses it, and kernels start faster without it.
        info = await self.backend.start_kernel(
            sandbox.model.id,
            kernel_id,
            cwd=model.cwd,
            key=None,
            debugger=sandbox.is_notebook_kernel,
            language=model.language,
        )
        context = Context(
            model=model,
            kernel_id=kernel_id,
            client=await self.connect(sandbox, kernel_id, info),
            hmac_key=hmac_key_of(info),
            connection_info=dict(info),
        )
        sandbox.add_context(context)
        self.save(sandbox)
        return context

    async def connect(
        self, sandbox: Sandbox, kernel_id: str, info: dict[str, Any], timeout: float | None = None
    ) -> KernelClient:
        """A client connected to a started kernel, once it answers within ``timeout`` seconds
        (kernel_ready_timeout by default); the kernel is stopped if it never does."""
        client = await self.backend.kernel_client(sandbox.model.id, kernel_id, info)
        try:
            await self.wait_ready(sandbox.model.id, kernel_id, client, timeout or self.ready_timeout())
        except BaseException:
            client.stop_channels()
            await self.backend.stop_kernel(sandbox.model.id, kernel_id)
            raise
        return client

    async def replace_kernel(self, sandbox: Sandbox, context: Context, same_address: bool = False) -> None:
        """A fresh kernel for ``context``, in place (its lock holder keeps using the same object).
        ``same_address``: at the old kernel's addresses with its key (a notebook's open connections
        reach the new one)."""
        context.close()
        await self.backend.stop_kernel(sandbox.model.id, context.kernel_id)
        kernel_id, hmac_key = (context.kernel_id, context.hmac_key.encode()) if same_address else (new_id()[:12], None)
        info = await self.backend.start_kernel(
            sandbox.model.id,
            kernel_id,
            cwd=context.model.cwd,
            key=hmac_key,
            debugger=sandbox.is_notebook_kernel,
            language=context.model.language,
        )
        context.client = await self.connect(sandbox, kernel_id, info)
        context.kernel_id, context.hmac_key, context.closed = kernel_id, hmac_key_of(info), False
        context.connection_info, context.stdin_connected = dict(info), False
        self.save(sandbox)

    async def stop_context(self, sandbox: Sandbox, context: Context) -> None:
        context.close()
        await self.backend.stop_kernel(sandbox.model.id, context.kernel_id)

    async def wait_ready(self, sandbox_id: str, kernel_id: str, client: KernelClient, timeout: float) -> None:
        """Ask for kernel_info until the kernel answers; fail fast, with its words, if it exits.

        (jupyter_client's wait_for_ready gives up as soon as the heartbeat is silent, which a
        kernel still starting under gVisor is for a few seconds.)
        """
        deadline = time.monotonic() + timeout
        while True:
            reply = await reply_to(client.get_shell_msg, client.kernel_info(), 1.0)
            if reply is not None and await iopub_connected(client):
                return
            reason = await self.backend.kernel_exit_reason(sandbox_id, kernel_id)
            if reason:
                raise KernelDied(f"the kernel did not start: {reason}")
            if time.monotonic() > deadline:
                raise KernelDied(f"the kernel did not answer within {timeout:g}s")

    async def connect_stdin(self, context: Context) -> None:
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
            if await reply_to(client.get_stdin_msg, msg_id, 1.0) is not None:
                client.input("")
                context.stdin_connected = True
            else:
                context.interrupt()
            await reply_to(client.get_shell_msg, msg_id, SILENT_REPLY_TIMEOUT)
            if context.stdin_connected:
                return
        raise KernelDied("the kernel never reached this server's stdin socket; restart the context")

    @staticmethod
    async def run_silently(context: Context, code: str) -> None:
        """Run ``code`` in the context's kernel with no output, history or execution count, and wait
        (at most SILENT_REPLY_TIMEOUT) for it to finish."""
        msg_id = context.client.execute(code, silent=True, store_history=False, allow_stdin=False)
        if await reply_to(context.client.get_shell_msg, msg_id, SILENT_REPLY_TIMEOUT) is None:
            raise KernelDied(f"the kernel did not finish a silent request within {SILENT_REPLY_TIMEOUT:g}s")


async def iopub_connected(client: KernelClient, timeout: float = 1.0) -> bool:
    # ZMQ's slow joiner: iopub (SUB) misses what the kernel publishes before the
    # subscription lands, so a kernel answering on shell can still lose the first
    # execution's outputs. The kernel publishes a status for every request: hearing
    # one means outputs will arrive. (Stale messages are ignored by parent msg_id.)
    try:
        await client.get_iopub_msg(timeout=timeout)
        return True
    except queue.Empty:
        return False


def hmac_key_of(info: dict[str, Any]) -> str:
    """The kernel's message-signing key in its connection info, as text."""
    value = info.get("key", "")
    return value.decode() if isinstance(value, bytes) else str(value)
