"""Kernels of Docker sandboxes: a launcher per kernel over ``docker exec``, and why a container stopped.

The launcher (programs/launcher.py) is exec'd as root, out of the sandbox's folders, and takes a
uid of its own first thing; relayed_kernels.py does the rest (the relay, why a kernel ended).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import SandboxError
from .kernel_relay import open_docker_exec
from .relayed_kernels import RelayedKernels

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend


class DockerKernels(RelayedKernels):
    """The relays of a Docker backend's kernels, and the reasons its sandboxes' containers stopped."""

    holder = "container"
    backend: DockerBackend

    async def launch(
        self,
        sandbox_id: str,
        kernel_id: str,
        mode: str,
        key: str,
        request: dict[str, Any],
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run the launcher in ``mode`` ("start" or "attach"); the kernel's connection info once it answers."""
        backend = self.backend
        cid = backend.container_id(sandbox_id)
        api = await backend.engine.call(lambda c: c.api)
        kernel_user, launcher_user = backend.containers.ids(sandbox_id)
        request = {**request, "kernel_user": kernel_user, "launcher_user": launcher_user}
        # root, and out of the sandbox's folders: the launcher takes its own user first thing
        stream = await open_docker_exec(
            api,
            cid,
            mode,
            user="0:0",
            python=backend.python,
            workdir="/",
            run=lambda blocking: backend.engine.call(lambda _: blocking()),
        )
        return await self.relay_over(stream, sandbox_id, kernel_id, key, request, timeout)

    def holds(self, sandbox_id: str) -> bool:
        return self.backend.has_container(sandbox_id)

    async def stopped_reason(self, sandbox_id: str) -> str | None:
        cid = self.backend.container_id(sandbox_id)
        try:
            state = (await self.backend.engine.call(lambda c: c.api.inspect_container(cid))).get("State", {})
        except SandboxError:
            state = {"Status": "removed"}
        if state.get("Running"):
            return None
        if state.get("OOMKilled"):
            return f"The sandbox's container stopped: {self.out_of_memory(sandbox_id, 'it ran')}. Restart the sandbox to continue."
        if state.get("Status") == "removed":
            return "The sandbox's container was removed outside this server. Restart the sandbox to continue."
        return (
            f"The sandbox's container stopped (exit code {state.get('ExitCode')}), e.g. killed or at its "
            "process limit. Restart the sandbox to continue."
        )
