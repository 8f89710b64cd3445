"""Kernels of Docker sandboxes: a launcher per kernel, relayed over its exec stream, and why each ended.

The launcher (programs/launcher.py) is exec'd as root, out of the sandbox's folders, and takes a
uid of its own first thing; kernel_relay.py serves the kernel's sockets on the host, in a folder
private to the server. When a kernel's stream closes, its container may have stopped: it is looked
at, and the reason (out of memory, removed, killed) is kept and told to the backend's ``on_exit``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from ..errors import KernelDied, SandboxError
from ..models import format_size
from .kernel_relay import KernelExited, KernelRelay, KernelRelayError, open_docker_exec

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend


class DockerKernels:
    """The relays of one backend's kernels, and the reasons its sandboxes' containers stopped."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self._relays: dict[tuple[str, str], KernelRelay] = {}  # (sandbox, kernel) -> its relay
        self._ended: dict[str, str] = {}  # sandbox id -> why its container stopped
        # sandbox id -> the look at its container after a kernel's stream closed (held until done:
        # a task nobody holds may be collected mid-way)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._sockets_dir: str | None = None

    def _socket_dir(self) -> str:
        """The server's private folder for the host side of kernel sockets (made on first use)."""
        if self._sockets_dir is None:
            # 0700, a random name
            self._sockets_dir = tempfile.mkdtemp(prefix="jsbx-", dir=self.backend.socket_root or None)
        return self._sockets_dir

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
        self._relays[(sandbox_id, kernel_id)] = relay
        relay.exited.add_done_callback(lambda _: self._kernel_ended(sandbox_id, kernel_id))
        timeout = timeout or backend.kernel_start_timeout
        try:
            await relay.wait_ready(timeout=timeout)
        except (KernelExited, asyncio.TimeoutError) as e:
            if mode == "attach" and not isinstance(e, KernelExited):
                # a kernel that runs but never answers (its own code stopped it): killed, so
                # the server can give its context a fresh one (SIGKILL ends a stopped process)
                await self.stop(sandbox_id, kernel_id)
                raise KernelDied(f"the kernel did not answer within {timeout:g} s") from None
            await self._drop(sandbox_id, kernel_id)
            why = await self._exit_reason(sandbox_id, e.info) if isinstance(e, KernelExited) else "no answer"
            raise KernelDied(f"the kernel did not start: {why}") from None
        return info

    def relay(self, sandbox_id: str, kernel_id: str) -> KernelRelay | None:
        """The relay of a kernel this backend started or attached (None when it has none)."""
        return self._relays.get((sandbox_id, kernel_id))

    def _kernel_ended(self, sandbox_id: str, kernel_id: str) -> None:
        """A kernel's relay ended. If its stream closed, the container may have stopped: look once."""
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None or relay.exited.cancelled() or relay.exited.result().get("reason") != "stream closed":
            return
        if sandbox_id in self._watchers:
            return
        watcher = asyncio.ensure_future(self._watch_container(sandbox_id))
        self._watchers[sandbox_id] = watcher
        watcher.add_done_callback(lambda _: self._watchers.pop(sandbox_id, None))

    async def _watch_container(self, sandbox_id: str, looks: int = 10) -> None:
        """Look at the container a few times: the stream of a killed one can close before the
        engine says it stopped."""
        for _ in range(looks):
            if await self._check_container(sandbox_id) is not None or not self.backend.has_container(sandbox_id):
                return
            await asyncio.sleep(0.5)

    async def _check_container(self, sandbox_id: str) -> str | None:
        """Why the sandbox's container stopped (remembered, and told to ``on_exit``), or None while it runs."""
        if sandbox_id in self._ended:
            return self._ended[sandbox_id]
        if not self.backend.has_container(sandbox_id):
            return None
        cid = self.backend.container_id(sandbox_id)
        try:
            state = (await self.backend.engine.call(lambda c: c.api.inspect_container(cid))).get("State", {})
        except SandboxError:
            state = {"Status": "removed"}
        if state.get("Running"):
            return None
        if state.get("OOMKilled"):
            reason = "The sandbox ran out of memory and its container stopped. Restart the sandbox to continue."
        elif state.get("Status") == "removed":
            reason = "The sandbox's container was removed outside this server. Restart the sandbox to continue."
        else:
            reason = (
                f"The sandbox's container stopped (exit code {state.get('ExitCode')}), e.g. killed or at its "
                "process limit. Restart the sandbox to continue."
            )
        if self.backend.has_container(sandbox_id):  # not removed meanwhile by the server itself
            self._ended[sandbox_id] = reason
            if self.backend.on_exit is not None:
                self.backend.on_exit(sandbox_id, reason)
        return reason

    def forget_ended(self, sandbox_id: str) -> None:
        """The sandbox's container runs again (made, restarted) or is gone: no reason kept."""
        self._ended.pop(sandbox_id, None)

    async def _exit_reason(self, sandbox_id: str, info: dict[str, Any]) -> str:
        """A sentence for a kernel's end, from the launcher's report (or the container's state)."""
        if info.get("reason") == "stream closed":
            watcher = self._watchers.get(sandbox_id)
            if watcher is not None:
                # A killed container's stream can close before the engine says it stopped (seen
                # under gVisor): the reason is the container's, once the look at it is over.
                await asyncio.wait({watcher})
            return (
                await self._check_container(sandbox_id)
                or "the link to the kernel closed (is the container overloaded?)"
            )
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
        """None while the kernel runs, else why it is gone. No engine call while it runs: the
        launcher reports its end on the stream."""
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
        """Close the relays of every kernel of a sandbox (its container restarts or goes)."""
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
        """The tail of a kernel's output (its stdout and stderr), as the launcher keeps it."""
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
        if self._sockets_dir is not None:
            shutil.rmtree(self._sockets_dir, ignore_errors=True)
            self._sockets_dir = None
