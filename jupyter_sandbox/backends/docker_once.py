"""One-shot containers of the Docker backend: started ahead (a pool keeps a few), run once, removed.

A one-shot container's only process is the program of its run (``OneShotProgram.command``),
attached before it starts; ``run`` sends it its stdin and reads its output. A run that ends
normally leaves the container's removal to the background (``close`` waits for it).
"""

from __future__ import annotations

import asyncio
import select
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import OneShotProgram, OneShotResult, OneShotSandbox
from .docker_engine import EngineClient, frames, raw_socket

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend


@dataclass
class AttachedContainer:
    """A started one-shot container and the stream attached to its program's stdin/stdout."""

    container_id: str
    sock: Any  # docker-py's attach socket
    taken: bool = False  # a run (or a discard) has it: it removes the container


class DockerOneShots:
    """The one-shot containers of one backend: those running, and those being removed."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend
        self._running: dict[str, str] = {}  # one-shot run id -> container id
        self._removals: set[asyncio.Task[None]] = set()  # containers being removed in the background

    async def start(self, program: OneShotProgram) -> OneShotSandbox:
        """A fresh container whose only command is ``program.command``, attached and started: its
        program waits for what ``run`` sends. It is attached before it starts (docker-py cannot set
        StdinOnce, so the program learns how much to read from what it is sent, not from EOF)."""
        backend, engine = self.backend, self.backend.engine
        options = backend.container_options(program.spec, program.labels, once=True)
        options["stdin_open"] = True
        if program.cpu_shares:
            options["cpu_shares"] = program.cpu_shares
        if program.read_only_dirs:
            options["volumes"] = {
                host: {"bind": inside, "mode": "ro"} for host, inside in program.read_only_dirs.items()
            }
        image = program.spec.image or backend.default_image
        making = asyncio.ensure_future(
            backend.containers.create(f"jupyter-sandbox-{program.run_id}", image, program.command, options)
        )
        try:
            cid = await asyncio.shield(making)
        except asyncio.CancelledError:
            # the engine makes it anyway: wait for it, and remove it
            await engine.remove_container(await making)
            raise
        self._running[program.run_id] = cid
        try:
            params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            sock = await engine.call(lambda c: c.api.attach_socket(cid, params=params))
            try:
                await engine.call(lambda c: c.api.start(cid))
            except BaseException:
                sock.close()
                raise
        except BaseException:
            self._running.pop(program.run_id, None)
            await engine.remove_container(cid)
            raise
        return OneShotSandbox(program.run_id, AttachedContainer(cid, sock))

    @staticmethod
    def unusable(sandbox: OneShotSandbox) -> str | None:
        """Why a waiting container cannot run its program; None when it can. No engine call: a
        container that stopped has closed its attached stream, and a waiting program writes
        nothing before it is sent its input."""
        handle: AttachedContainer = sandbox.handle
        raw = raw_socket(handle.sock)
        try:
            if not select.select([raw], [], [], 0)[0]:
                return None
            data = raw.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError) as e:
            return f"its stream to the container failed ({e})"
        return "its program wrote before it was sent anything" if data else "its container stopped"

    async def discard(self, sandbox: OneShotSandbox) -> None:
        handle: AttachedContainer = sandbox.handle
        if handle.taken:
            return  # its run removes it
        handle.taken = True
        handle.sock.close()
        self._running.pop(sandbox.run_id, None)
        await self.backend.engine.remove_container(handle.container_id)

    async def run(
        self, program: OneShotProgram, started: Callable[[], None], sandbox: OneShotSandbox | None = None
    ) -> OneShotResult:
        """Send ``program.stdin`` to the program of ``sandbox`` (or of a container started now) and
        read its output. A failed, cancelled or stopped run has its container removed before this
        returns; one that ended normally, in the background."""
        engine = self.backend.engine
        if sandbox is None:
            sandbox = await self.start(program)
        handle: AttachedContainer = sandbox.handle
        handle.taken = True
        cid, sock = handle.container_id, handle.sock
        try:
            started()

            def talk(_c: EngineClient) -> tuple[bytes, bytes, bool]:
                raw_socket(sock).sendall(program.stdin)
                kept = {1: bytearray(), 2: bytearray()}
                for stream, data in frames(sock):
                    target = kept.get(stream)
                    if target is not None and len(target) < program.max_output:
                        target += data[: program.max_output - len(target)]
                    if program.ends_with_line and stream == 1 and data.endswith(b"\n"):
                        return bytes(kept[1]), bytes(kept[2]), True
                return bytes(kept[1]), bytes(kept[2]), False

            try:
                stdout, stderr, over = await engine.call(talk, streaming=True)
            finally:
                sock.close()
            if over:
                result = OneShotResult(stdout, stderr, None, False)
            else:
                exit_code = (await engine.call(lambda c: c.api.wait(cid, timeout=30))).get("StatusCode")
                state = (await engine.call(lambda c: c.api.inspect_container(cid))).get("State", {})
                result = OneShotResult(stdout, stderr, exit_code, bool(state.get("OOMKilled")))
        except BaseException:
            self._running.pop(program.run_id, None)
            await engine.remove_container(cid)
            raise
        self._running.pop(program.run_id, None)
        self._remove_soon(cid)
        return result

    def _remove_soon(self, cid: str) -> None:
        """Remove a container in the background (off a request's path); ``close`` waits for it."""
        removal = asyncio.ensure_future(self.backend.engine.remove_container(cid))
        self._removals.add(removal)

        def done(task: asyncio.Task[None]) -> None:
            self._removals.discard(task)
            if not task.cancelled() and task.exception() is not None:
                self.backend.log.error("jupyter-sandbox: removing container %s failed: %s", cid[:12], task.exception())

        removal.add_done_callback(done)

    async def stop(self, run_id: str) -> None:
        cid = self._running.get(run_id)
        if cid is not None:
            await self.backend.engine.remove_container(cid)

    async def close(self) -> None:
        """Wait for the removals under way (their failures were logged)."""
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)
