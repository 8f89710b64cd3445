"""A watch on a Kubernetes sandbox's directory: programs/files.py ``watch`` in a long ``pods/exec``.

As on Docker (docker_watch.py): the program polls the directory inside the pod and prints a JSON
line per batch of changes; a line on its stdin asks for a look now. Closing the websocket ends
its stdin, and so the program (on v4 too: the exec's stdin ends with the connection).
"""

from __future__ import annotations

import asyncio
import contextlib

from ..errors import BackendUnavailable
from .dir_watch import Batch, QueueWatch
from .docker_watch import LINE_LIMIT, _batch
from .kubernetes_exec import STDIN, Connect, exit_code
from .kubernetes_processes import PodExecSocket


class KubernetesWatch(QueueWatch):
    def __init__(self, connect: Connect, command: tuple[list[str], bytes], timeout: float) -> None:
        super().__init__()
        self.connect, self.command, self.timeout = connect, command, timeout
        self._io: PodExecSocket | None = None
        self._reader: asyncio.Future[None] | None = None
        self._asks: set[asyncio.Future[None]] = set()  # (held: a task nobody holds may be collected)
        self.failure: tuple[int | None, bytes] | None = None  # exit code and stderr, if it ended at once

    async def start(self) -> bool:
        """Starts it; False if the program ended before watching (``failure`` says why)."""
        argv, source = self.command
        self._io = io = PodExecSocket(await self.connect(argv, True))
        opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        try:
            await io.send(STDIN, source)  # the program itself (kubernetes_exec.program's bootstrap reads it)
        except BackendUnavailable:
            await io.close()
            raise
        self._reader = asyncio.ensure_future(self._pump(io, opened))
        try:
            return await asyncio.wait_for(asyncio.shield(opened), self.timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise BackendUnavailable(f"the sandbox did not start watching in {self.timeout:g} s") from None

    async def _pump(self, io: PodExecSocket, opened: asyncio.Future[bool]) -> None:
        err, pending = bytearray(), b""
        try:
            while True:
                kind, data = await io.read()
                if not kind:
                    break
                if kind != "stdout":
                    err += data[: 4096 - len(err)]
                    continue
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if not opened.done():
                        opened.set_result(True)  # its first line: it is watching
                    else:
                        self.put(_batch(line))
                if len(pending) > LINE_LIMIT:
                    break
        finally:
            await io.close()
            if not opened.done():
                self.failure = (exit_code(io.status), bytes(err))
                opened.set_result(False)
            self.put(Batch(last=True))

    def look_now(self) -> None:
        if self._io is not None and self.ended is None:
            self._asks.add(asyncio.ensure_future(self._ask(self._io)))

    async def _ask(self, io: PodExecSocket) -> None:
        with contextlib.suppress(BackendUnavailable):  # the watch ended: its last batch says so
            await io.send(STDIN, b"\n")
        self._asks.discard(asyncio.current_task())

    async def close(self) -> None:
        if self._io is not None:
            await self._io.close()  # its stdin ends: the program ends
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
