"""Kernels reached through a launcher relayed over an engine's exec stream: what Docker and
Kubernetes share.

Each engine opens the stream its own way (``docker exec``, ``pods/exec``) and says why a sandbox
stopped (``stopped_reason``); the rest is here: the relay per kernel (kernel_relay.py serves the
kernel's sockets on the host, in a folder private to the server), waiting until the kernel
answers, and why a kernel ended. When a kernel's stream closes, its sandbox may have stopped: it
is looked at a few times, and the reason (out of memory, removed, killed) is kept and told to the
backend's ``on_exit``.
"""

from __future__ import annotations

import abc
import asyncio
import re
import shutil
import tempfile
from typing import Any

from ..errors import KernelDied
from ..models import limit_text
from .base import SandboxBackend
from .kernel_relay import KernelExited, KernelRelay, KernelRelayError


class RelayedKernels(abc.ABC):
    """The relays of one backend's kernels, and the reasons its sandboxes stopped."""

    # what holds a sandbox on this engine, in messages ("container", "pod")
    holder = "container"

    def __init__(self, backend: SandboxBackend) -> None:
        self.backend: Any = backend  # the engine's backend: its settings (timeouts, relay budget)
        self._relays: dict[tuple[str, str], KernelRelay] = {}  # (sandbox, kernel) -> its relay
        self._ended: dict[str, str] = {}  # sandbox id -> why it stopped
        # sandbox id -> the look at it after a kernel's stream closed (held until done: a task
        # nobody holds may be collected mid-way)
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._sockets_dir: str | None = None
        self._telling: set[asyncio.Task[None]] = set()

    @abc.abstractmethod
    def holds(self, sandbox_id: str) -> bool:
        """Whether the backend still holds the sandbox (False once the server removed it)."""

    @abc.abstractmethod
    async def stopped_reason(self, sandbox_id: str) -> str | None:
        """Why the sandbox stopped (a sentence), or None while it runs or nothing is known."""

    def _socket_dir(self) -> str:
        """The server's private folder for the host side of kernel sockets (made on first use)."""
        if self._sockets_dir is None:  # 0700, a random name
            self._sockets_dir = tempfile.mkdtemp(prefix="jsbx-", dir=self.backend.socket_root or None)
        return self._sockets_dir

    async def relay_over(
        self,
        stream: Any,
        sandbox_id: str,
        kernel_id: str,
        key: str,
        request: dict[str, Any],
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Relay a launcher's exec ``stream`` (``request`` says start or attach); the kernel's
        connection info once it answers."""
        backend = self.backend
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
            stream.writer.close()  # the exec ends with its stream
            raise
        self._relays[(sandbox_id, kernel_id)] = relay
        relay.exited.add_done_callback(lambda _: self._kernel_ended(sandbox_id, kernel_id))
        timeout = timeout or backend.kernel_start_timeout
        try:
            await relay.wait_ready(timeout=timeout)
        except (KernelExited, asyncio.TimeoutError) as e:
            if "argv" not in request and not isinstance(e, KernelExited):
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
        """A kernel's relay ended. If its stream closed, the sandbox may have stopped: look."""
        relay = self._relays.get((sandbox_id, kernel_id))
        if relay is None or relay.exited.cancelled():
            return
        ended = relay.exited.result()
        if ended.get("reason") == "stream closed" or (ended.get("reason") == "exited" and ended.get("code") != 0):
            told = asyncio.ensure_future(self._tell_running_cell(sandbox_id, relay))
            self._telling.add(told)  # held until done: a task nobody holds may be collected mid-way
            told.add_done_callback(self._telling.discard)
        if relay.exited.result().get("reason") != "stream closed":
            return
        if sandbox_id not in self._watchers:
            watcher = asyncio.ensure_future(self._watch(sandbox_id))
            self._watchers[sandbox_id] = watcher
            watcher.add_done_callback(lambda _: self._watchers.pop(sandbox_id, None))

    async def _tell_running_cell(self, sandbox_id: str, relay: KernelRelay) -> None:
        """The cell the kernel was running says why it died (running_cells.py), before the restart."""
        why = await self._exit_reason(sandbox_id, relay.exited.result())
        why = re.sub(r"\s*Restart the (context|sandbox) to continue\.", "", why).rstrip(".")
        if relay.cells.tell(f"{why}. The kernel restarts; its variables are lost.") and self.backend.on_kernel_died:
            self.backend.on_kernel_died(sandbox_id, why)

    async def _watch(self, sandbox_id: str, looks: int = 10) -> None:
        """Look a few times: the stream of a killed sandbox can close before the engine says it stopped."""
        for _ in range(looks):
            if await self.check_stopped(sandbox_id) is not None or not self.holds(sandbox_id):
                return
            await asyncio.sleep(0.5)

    async def check_stopped(self, sandbox_id: str) -> str | None:
        """Why the sandbox stopped (kept, and told to ``on_exit``), or None while it runs."""
        if sandbox_id in self._ended:
            return self._ended[sandbox_id]
        if not self.holds(sandbox_id):
            return None
        reason = await self.stopped_reason(sandbox_id)
        if reason is not None and self.holds(sandbox_id):  # not removed meanwhile by the server itself
            self._ended[sandbox_id] = reason
            if self.backend.on_exit is not None:
                self.backend.on_exit(sandbox_id, reason)
        return reason

    def forget_ended(self, sandbox_id: str) -> None:
        """The sandbox runs again (made, restarted) or is gone: no reason kept."""
        self._ended.pop(sandbox_id, None)

    async def _exit_reason(self, sandbox_id: str, info: dict[str, Any]) -> str:
        """A sentence for a kernel's end, from the launcher's report (or the sandbox's state)."""
        if info.get("reason") == "stream closed":
            watcher = self._watchers.get(sandbox_id)
            if watcher is not None:
                # A killed sandbox's stream can close before the engine says it stopped (seen
                # under gVisor): the reason is the sandbox's, once the look at it is over.
                await asyncio.wait({watcher})
            return await self.check_stopped(sandbox_id) or (
                f"the link to the kernel closed (is the {self.holder} overloaded?)"
            )
        if info.get("error"):
            return str(info["error"])
        if info.get("signal") == 9 or info.get("code") == 137:
            return f"The kernel died: {self.out_of_memory(sandbox_id)}. Restart the context to continue."
        tail = " ".join(str(info.get("log") or "").strip().splitlines()[-3:])
        what = f"signal {info['signal']}" if info.get("signal") else f"exit code {info.get('code')}"
        return f"The kernel died ({what}). {tail}".strip()

    def out_of_memory(self, sandbox_id: str, what: str = "it was killed (SIGKILL), most likely") -> str:
        """``what`` out of memory, and the sandbox's limit as its user set it (models.limit_text)."""
        spec = self.backend.spec_if_known(sandbox_id)
        return f"{what} out of memory" + (f" (the sandbox has {limit_text(spec.memory, spec.disk)})" if spec else "")

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
        """Close the relays of every kernel of a sandbox (it restarts or goes)."""
        for sid, kid in [k for k in self._relays if k[0] == sandbox_id]:
            await self._drop(sid, kid)

    async def detach_all(self, sandbox_id: str, timeout: float = 10.0) -> None:
        """A pause: each of the sandbox's launchers leaves (its stream with it: a checkpoint cannot
        keep an engine's stream) and its kernel runs on, for an ``attach`` after the restore."""
        for key in [k for k in self._relays if k[0] == sandbox_id]:
            relay = self._relays.pop(key)
            if not relay.exited.done():
                try:
                    relay.send_op("detach")
                    await asyncio.wait_for(asyncio.shield(relay.exited), timeout)  # the launcher's stream ends
                except (KernelRelayError, asyncio.TimeoutError) as e:
                    self.backend.log.warning("detaching kernel %s: %s", key[1], e)
            await relay.close()

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
        for watcher in list(self._watchers.values()):
            watcher.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        if self._sockets_dir is not None:
            shutil.rmtree(self._sockets_dir, ignore_errors=True)
            self._sockets_dir = None
