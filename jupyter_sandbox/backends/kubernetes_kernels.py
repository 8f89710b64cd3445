"""Kernels of Kubernetes sandboxes: a launcher per kernel, relayed over its ``pods/exec`` stream.

The launcher (programs/launcher.py) runs as the pod's user: a Pod-Security-"restricted" pod holds
no capability to change uids, so the launcher and its kernel share one (the launcher's request
names no ``kernel_user``, as on the local backend). The pod is the boundary; a RuntimeClass
(gVisor, Kata) makes it a stronger one. When a kernel's stream closes, the pod is looked at: the
reason it stopped (OOMKilled, deleted, its exit code) is kept and told to the backend's ``on_exit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import NotFound, SandboxError
from .kernel_relay import launcher_source
from .kubernetes_exec import open_exec, program
from .relayed_kernels import RelayedKernels

if TYPE_CHECKING:  # (only for types: kubernetes.py imports this module)
    from .kubernetes import KubernetesBackend


def pod_stopped_reason(pod: dict[str, Any] | None) -> str | None:
    """Why a sandbox's pod is not running (a sentence), or None while it runs. ``None``: it is gone."""
    if pod is None:
        return "The sandbox's pod was deleted outside this server. Restart the sandbox to continue."
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "The sandbox's pod is being deleted. Restart the sandbox to continue."
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            if terminated.get("reason") == "OOMKilled":
                return "The sandbox ran out of memory and its pod stopped. Restart the sandbox to continue."
            return (
                f"The sandbox's pod stopped (exit code {terminated.get('exitCode')}, {terminated.get('reason')}). "
                "Restart the sandbox to continue."
            )
    if status.get("phase") in ("Failed", "Succeeded"):
        return (
            f"The sandbox's pod stopped ({status.get('reason') or status['phase']}). Restart the sandbox to continue."
        )
    return None


class KubernetesKernels(RelayedKernels):
    """The relays of a Kubernetes backend's kernels, and the reasons its sandboxes' pods stopped."""

    holder = "pod"
    backend: KubernetesBackend

    async def launch(
        self, sandbox_id: str, kernel_id: str, key: str, request: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Run the launcher (``request`` says start or attach); the kernel's connection info once it answers."""
        backend = self.backend
        backend.spec(sandbox_id)  # NotFound for a sandbox this backend does not hold
        mode = "start" if "argv" in request else "attach"
        launcher = program(backend.python, launcher_source(), mode)
        stream = await open_exec(backend.exec_connect(sandbox_id), launcher, f"launcher of {kernel_id}")
        return await self.relay_over(stream, sandbox_id, kernel_id, key, request, timeout)

    def holds(self, sandbox_id: str) -> bool:
        return self.backend.holds(sandbox_id)

    async def stopped_reason(self, sandbox_id: str) -> str | None:
        try:
            pod: dict[str, Any] | None = await self.backend.pods.get(sandbox_id)
        except NotFound:
            pod = None
        except SandboxError:
            return None  # the API server did not answer: nothing known
        reason = pod_stopped_reason(pod)
        if reason and "out of memory" in reason:
            # the figure the user set, not the pod's limit (which counts its tmpfs mounts too)
            reason = f"The sandbox's pod stopped: {self.out_of_memory(sandbox_id, 'it ran')}. Restart the sandbox to continue."
        return reason
