"""A watch on a Docker sandbox's directory: programs/files.py ``watch`` in a long exec.

The program polls the directory inside the sandbox (no inotify there) and prints a JSON line per
batch of changes; a line written to its stdin asks for a look now; closing the stream ends it.
The exec holds one of the engine's stream threads while it lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable
from .dir_watch import Batch, QueueWatch
from .docker_engine import EngineClient, exit_code, frames, hang_up, raw_socket

if TYPE_CHECKING:  # (only for types: docker_files.py imports this module)
    from .docker import DockerBackend

LINE_LIMIT = 1 << 20  # bytes of one line from the watch (a batch of changes)


class ExecWatch(QueueWatch):
    def __init__(self, backend: DockerBackend, sandbox_id: str, argv: list[str]) -> None:
        super().__init__()
        self.backend, self.sandbox_id, self.argv = backend, sandbox_id, argv
        self._sock: Any = None
        self._reader: asyncio.Future[None] | None = None
        self.failure: tuple[int | None, bytes] | None = None  # exit code and stderr, if it ended at once

    async def start(self) -> bool:
        """Starts it; False if the program ended before watching (``failure`` says why)."""
        cid = self.backend.container_id(self.sandbox_id)
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[bool] = loop.create_future()

        def deliver(batch: Batch) -> None:
            if not opened.done():
                opened.set_result(True)  # its first line: it is watching
                return
            self.put(batch)

        def ended(code: int | None, err: bytes) -> None:
            if not opened.done():
                self.failure = (code, err)
                opened.set_result(False)
            self.put(Batch(last=True))

        def pump(c: EngineClient) -> None:
            code: int | None = None
            err = bytearray()
            try:
                exec_id = c.api.exec_create(cid, self.argv, user="0:0", stdin=True)["Id"]
                self._sock = c.api.exec_start(exec_id, socket=True)
                pending = b""
                try:
                    for stream, data in frames(self._sock):
                        if stream != 1:
                            err += data[: 4096 - len(err)]
                            continue
                        pending += data
                        while b"\n" in pending:
                            line, pending = pending.split(b"\n", 1)
                            loop.call_soon_threadsafe(deliver, _batch(line))
                        if len(pending) > LINE_LIMIT:
                            break
                finally:
                    hang_up(self._sock)
                code = exit_code(c, exec_id)
            finally:
                loop.call_soon_threadsafe(ended, code, bytes(err))

        self._reader = asyncio.ensure_future(self.backend.engine.call(pump, streaming=True))
        timeout = self.backend.engine_timeout
        try:
            return await asyncio.wait_for(asyncio.shield(opened), timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise BackendUnavailable(f"the sandbox did not start watching in {timeout:g} s") from None

    def look_now(self) -> None:
        if self._sock is not None and self.ended is None:
            with contextlib.suppress(OSError):
                raw_socket(self._sock).send(b"\n")

    async def close(self) -> None:
        if self._sock is not None:
            hang_up(self._sock)  # its stdin closes: the program ends
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def _batch(line: bytes) -> Batch:
    try:
        data = json.loads(line)
        found = [(str(name), str(kind)) for name, kind in data["changes"]]
        return Batch(found, bool(data["asked"]))
    except (ValueError, KeyError, TypeError):
        return Batch()  # not the program's line: nothing found in it
