"""Where a notebook kernel's sandbox lives, for the provisioner: this process's SandboxManager, or
the sandbox service of a JupyterHub deployment (Hub mode: the user's server holds no engine).

``KernelHost`` is what the provisioner needs of either: create the sandbox, the kernel's
connection info, its exit reason, interrupt, stop and restart its kernel in place, remove it.
``ServiceKernelHost`` does it over the service's REST routes (server/kernel_ws.py, with the
user's Hub token) and hands jupyter_client the sockets of a local ``KernelBridge``, whose
messages travel over the service's kernel websocket.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Protocol

from ..client.connection import HTTPConnection, url_part
from ..models import SpecRequest
from .bridge import KernelBridge

SERVICE_URL_ENV = "JUPYTER_SANDBOX_SERVICE_URL"  # the sandbox service's base URL: Hub mode when set
SERVICE_TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # the user's Hub token, which the Hub gives their server


class KernelHost(Protocol):
    """Where a kernel's sandbox lives; sandboxes are named by id."""

    description: str  # for logs: the backend, or the service's URL

    async def create(self, name: str, spec: SpecRequest, kernel_id: str | None = None) -> str:
        """A running ``kind="kernel"`` sandbox (tied to this server's kernel ``kernel_id`` where the
        host knows this server's kernels); its id."""

    async def connection(self, sandbox_id: str) -> dict[str, Any]:
        """The connection info jupyter_client reaches the sandbox's kernel with."""

    async def exit_reason(self, sandbox_id: str) -> str | None:
        """Why the kernel is gone; None while it runs. NotFound: the sandbox is gone."""

    async def interrupt(self, sandbox_id: str) -> None: ...

    async def stop_kernel(self, sandbox_id: str) -> None:
        """Stop the kernel process; the sandbox stays."""

    async def restart_kernel(self, sandbox_id: str) -> None:
        """A fresh kernel, reached at the same connection info."""

    async def remove(self, sandbox_id: str) -> None: ...

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        """Write a file in the sandbox (``path`` relative to its working directory)."""

    async def close(self) -> None:
        """Let go of what this host holds for the kernel (sockets); the sandbox is not touched."""


def service_settings(url: str | None, token: str | None) -> tuple[str, str | None] | None:
    """(service URL, token) from the traits, else the environment; None: not in Hub mode."""
    url = url or os.environ.get(SERVICE_URL_ENV) or None
    if not url:
        return None
    return url, token or os.environ.get(SERVICE_TOKEN_ENV) or None


class ServiceKernelHost:
    """A kernel's sandbox on the sandbox service at ``url`` (its base URL; the API is under
    ``sandbox/api/``), reached with ``token``."""

    def __init__(self, url: str, token: str | None, log: logging.Logger) -> None:
        self.http = HTTPConnection(url, token)
        self.token = token
        self.log = log
        self.description = f"the sandbox service at {self.http.base_url}"
        self._bridge: KernelBridge | None = None
        self._info: dict[str, Any] = {}

    async def create(self, name: str, spec: SpecRequest, kernel_id: str | None = None) -> str:
        # (the service knows no kernel of this server: the provisioner's cleanup removes the sandbox)
        model = await self.http.request("POST", "kernels", json={"name": name, **spec.given()})
        sandbox_id: str = model.json()["id"]
        return sandbox_id

    async def connection(self, sandbox_id: str) -> dict[str, Any]:
        if self._bridge is None:
            ws_url = "ws" + self.http.api_url.removeprefix("http") + f"sandboxes/{url_part(sandbox_id)}/channels"
            bridge = KernelBridge(ws_url, self.token, self.log)
            self._info = bridge.start()
            try:
                await bridge.connect()
            except BaseException:
                bridge.close()
                raise
            self._bridge = bridge
        return dict(self._info)

    async def exit_reason(self, sandbox_id: str) -> str | None:
        reason: str | None = (await self.http.request("GET", f"sandboxes/{url_part(sandbox_id)}/kernel")).json()[
            "exit_reason"
        ]
        return reason

    async def interrupt(self, sandbox_id: str) -> None:
        await self.http.interrupt(sandbox_id)

    async def stop_kernel(self, sandbox_id: str) -> None:
        await self.http.request("DELETE", f"sandboxes/{url_part(sandbox_id)}/kernel")

    async def restart_kernel(self, sandbox_id: str) -> None:
        # the service's websocket reaches the new kernel at the old addresses: the same bridge goes on
        await self.http.request("POST", f"sandboxes/{url_part(sandbox_id)}/kernel/restart")
        if self._bridge is not None:
            self._bridge.rebind()

    async def remove(self, sandbox_id: str) -> None:
        await self.http.remove(sandbox_id)

    async def write_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        await self.http.write_file(sandbox_id, path, data)

    async def close(self) -> None:
        if self._bridge is not None:
            self._bridge.close()
            self._bridge = None
        await self.http.close()
