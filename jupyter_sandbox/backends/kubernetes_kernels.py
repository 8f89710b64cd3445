"""Kernels of Kubernetes sandboxes: a launcher per kernel, relayed over its ``pods/exec`` stream.

The launcher (programs/launcher.py) runs as the pod's user: a Pod-Security-"restricted" pod holds
no capability to change uids, so the launcher and its kernel share one (the launcher's request
names no ``kernel_user``, as on the local backend). The pod is the boundary; a RuntimeClass
(gVisor, Kata) makes it a stronger one. When a kernel's stream closes, the pod is looked at: the
reason it stopped (OOMKilled, deleted, its exit code) is kept and told to the backend's ``on_exit``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ..errors import KernelDied, NotFound, SandboxError
from ..models import format_size
from .kernel_relay import KernelExited, KernelRelay, KernelRelayError, launcher_source
from .kubernetes_exec import open_exec, program

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


class KubernetesKernels:
    """The relays of one backend's kernels, and the reasons its sandboxes' pods stopped."""

    def __init__(self, backend: KubernetesBackend) -> None:
        self.backend = backend
        self._relays: dict[tuple[str, str], KernelRelay] = {}
        self._ended: dict[str, str] = {}  # sandbox id -> why its pod stopped
        self._watchers: dict[str, asyncio.Task[None]] = {}  # held until done
        self._sockets_dir: str | None = None

    def _socket_dir(self) -> str:
        if self._sockets_dir is None:  # 0700, a random name
            self._sockets_dir = tempfile.mkdtemp(prefix="jsbx-", dir=self.backend.socket_root or None)
        return self._sockets_dir

    async def launch(
        self, sandbox_id: str, kernel_id: str, key: str, request: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Run the launcher (``request`` says start or attach); the kernel's connection info once it answers."""
        backend = self.backend
        backend.spec(sandbox_id)  # NotFound for a sandbox this backend does not hold
        mode = "start" if "argv" in request else "attach"
        launcher = program(backend.python, launcher_source(), mode)
        stream = await open_exec(backend.exec_connect(sandbox_id), launcher, f"launcher of {kernel_id}")
        try:
            relay = KernelRelay(
                stream.reader,
                stream.writer,
                self._socket_dir(),
                kernel_id,
                key,
                liveness_timeout=backend.liveness_timeout,
                outputs=backend.outputs,
                bytes_per_second=backend.relay_bytes_per_second,
                messages_per_second=backend.relay_messages_per_second,
            )
            info = await relay.start(request)
        except BaseException:
            stream.writer.close()  # the exec ends with its websocket
            raise
        self._relays[(sandbox_id, kernel_id)] = relay
        relay.exited.add_done_callback(lambda _: self._kernel_ended(sandbox_id, kernel_id))
        timeout = timeout or backend.kernel_start_timeout
        try:
            await relay.wait_ready(timeout=timeout)
        except (KernelExited, asyncio.TimeoutError) as e:
            if mode == "attach" and not isinstance(e, KernelExited):
                await self.stop(sandbox_id, kernel_id)  # frozen by its own code: killed
                raise KernelDied(f"the kernel did not answer within {timeout:g} s") from None
            await self._drop(sandbox_id, kernel_id)
            why = await self._exit_reason(sandbox_id, e.info) if isinstance(e, KernelExited) else "no answer"
            raise KernelDied(f"the kernel did not start: {why}") from None
        return info

    def relay(self, sandbox_id: str, kernel_id: str) -> KernelRelay | None:
        return self._relays.get((sandbox_id, kernel_id))

    def _kernel_ended(self, sandbox_id: str, kernel_id: str) -> None:
        """A kernel's relay ended. If its stream closed, the pod may have stopped: look a few times."""
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None or relay.exited.cancelled() or relay.exited.result().get("reason") != "stream closed":
            return
        if sandbox_id not in self._watchers:
            watcher = asyncio.ensure_future(self._watch_pod(sandbox_id))
            self._watchers[sandbox_id] = watcher
            watcher.add_done_callback(lambda _: self._watchers.pop(sandbox_id, None))

    async def _watch_pod(self, sandbox_id: str, looks: int = 10) -> None:
        for _ in range(looks):  # the stream of a killed pod can close before its status says so
            if await self.check_pod(sandbox_id) is not None or not self.backend.holds(sandbox_id):
                return
            await asyncio.sleep(0.5)

    async def check_pod(self, sandbox_id: str) -> str | None:
        """Why the sandbox's pod stopped (kept, and told to ``on_exit``), or None while it runs."""
        if sandbox_id in self._ended:
            return self._ended[sandbox_id]
        if not self.backend.holds(sandbox_id):
            return None
        try:
            pod: dict[str, Any] | None = await self.backend.pods.get(sandbox_id)
        except NotFound:
            pod = None
        except SandboxError:
            return None  # the API server did not answer: nothing known
        reason = pod_stopped_reason(pod)
        if reason is not None and self.backend.holds(sandbox_id):
            self._ended[sandbox_id] = reason
            if self.backend.on_exit is not None:
                self.backend.on_exit(sandbox_id, reason)
        return reason

    def forget_ended(self, sandbox_id: str) -> None:
        self._ended.pop(sandbox_id, None)

    async def _exit_reason(self, sandbox_id: str, info: dict[str, Any]) -> str:
        """A sentence for a kernel's end, from the launcher's report (or the pod's state)."""
        if info.get("reason") == "stream closed":
            watcher = self._watchers.get(sandbox_id)
            if watcher is not None:
                await asyncio.wait({watcher})
            return await self.check_pod(sandbox_id) or "the link to the kernel closed (is the pod overloaded?)"
        if info.get("error"):
            return str(info["error"])
        if info.get("signal") == 9 or info.get("code") == 137:
            spec = self.backend.spec_if_known(sandbox_id)
            limit = format_size(self.backend.memory_limit(spec)) if spec else "?"
            return (
                f"The kernel died: it was killed (SIGKILL), most likely out of memory (the sandbox holds "
                f"{limit}, its files included). Restart the context to continue."
            )
        tail = " ".join(str(info.get("log") or "").strip().splitlines()[-3:])
        what = f"signal {info['signal']}" if info.get("signal") else f"exit code {info.get('code')}"
        return f"The kernel died ({what}). {tail}".strip()

    async def exit_reason(self, sandbox_id: str, kernel_id: str) -> str | None:
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None:
            return self._ended.get(sandbox_id) or "the kernel is not running"
        if not relay.exited.done():
            return None
        return await self._exit_reason(sandbox_id, relay.exited.result())

    async def _drop(self, sandbox_id: str, kernel_id: str) -> None:
        relay = self._relays.pop((sandbox_id, kernel_id), None)
        if relay is not None:
            await relay.close()

    async def drop_all(self, sandbox_id: str) -> None:
        for sid, kid in [k for k in self._relays if k[0] == sandbox_id]:
            await self._drop(sid, kid)

    async def stop(self, sandbox_id: str, kernel_id: str) -> None:
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is not None and not relay.exited.done():
            try:
                await relay.stop_kernel(timeout=10)
            except KernelRelayError as e:
                self.backend.log.debug("stopping kernel %s: %s", kernel_id, e)
        await self._drop(sandbox_id, kernel_id)

    async def log(self, sandbox_id: str, kernel_id: str) -> str:
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None:
            return ""
        try:
            return await relay.log(timeout=5)
        except KernelRelayError:
            return ""

    async def close(self) -> None:
        """Close every relay (the kernels stay: a restarted server may reattach) and the sockets' folder."""
        for key in list(self._relays):
            await self._drop(*key)
        for watcher in list(self._watchers.values()):
            watcher.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._sockets_dir is not None:
            shutil.rmtree(self._sockets_dir, ignore_errors=True)
            self._sockets_dir = None
