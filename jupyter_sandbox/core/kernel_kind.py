"""The API of sandboxes whose kernel is reached from outside the manager: a notebook's whole kernel
(kind "kernel", jupyter_sandbox.kernel's provisioner: its connection info, why it exited, stopping
and restarting it in place), and E2B's SDK (the secret URL a sandbox is reached at, server/e2b).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from ..errors import BackendUnavailable, Conflict, KernelDied, NotFound
from ..models import now
from .kernels import KernelPlumbing
from .registry import SandboxRegistry
from .sandbox import Sandbox


def kernel_connection(sandbox: Sandbox, ref: str) -> dict[str, Any]:
    """The connection info of a ``kind="kernel"`` sandbox's kernel (for jupyter_client); ``ref``
    is what the caller named it by."""
    if not sandbox.is_notebook_kernel:
        raise Conflict(f"sandbox {ref!r} is not a notebook kernel's sandbox")
    return dict(sandbox.context(None).connection_info)


async def stop_kernel(kernels: KernelPlumbing, sandbox: Sandbox) -> None:
    """Stop the sandbox's (default context's) kernel process; the sandbox stays."""
    await kernels.stop_context(sandbox, sandbox.context(None))


async def restart_kernel(kernels: KernelPlumbing, sandbox: Sandbox, log: logging.Logger) -> None:
    """A fresh kernel process at the same addresses with the same key (the notebook's open
    connections reach it). A sandbox whose container died (out of memory, process limit) gets a
    fresh one first."""
    context = sandbox.context(None)
    async with sandbox.lock:
        sandbox.model.status = "restarting"
        try:
            try:
                await kernels.replace_kernel(sandbox, context, same_address=True)
            except (KernelDied, BackendUnavailable, NotFound) as e:
                # e.g. the container stopped (out of memory, process limit): no exec in it works
                log.info(
                    "jupyter-sandbox: sandbox %s cannot start a kernel (%s); restarting its container",
                    sandbox.model.id,
                    e,
                )
                await kernels.backend.restart(sandbox.model.id)
                await kernels.replace_kernel(sandbox, context, same_address=True)
        except BaseException as e:
            sandbox.model.status, sandbox.model.status_reason = "exited", f"its kernel could not be restarted: {e}"
            raise
        sandbox.close_unread_iopub()
        sandbox.model.status = "running"
        sandbox.model.last_activity = now()


def give_e2b_url(sandbox: Sandbox, e2b_prefix: str) -> None:
    """A new secret URL for E2B's SDK, when the server has E2B routes (``e2b_prefix``)."""
    if e2b_prefix:
        sandbox.e2b_secret = secrets.token_urlsafe(32)
        sandbox.model.e2b_url = f"{e2b_prefix}{sandbox.model.id}/{sandbox.e2b_secret}"


def owner_by_e2b_secret(registry: SandboxRegistry, sandbox_id: str, secret: str) -> str:
    """The owner of the sandbox whose e2b_url carries ``secret`` (compared in constant time);
    NotFound for a wrong secret, as for an unknown sandbox."""
    sandbox = registry.sandboxes.get(sandbox_id)
    expected = sandbox.e2b_secret if sandbox else ""
    if not sandbox or not expected or not hmac.compare_digest(expected.encode(), secret.encode()):
        raise NotFound(f"no sandbox {sandbox_id!r} (or a wrong secret in the URL)")
    return sandbox.model.owner
