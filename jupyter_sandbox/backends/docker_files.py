"""Files of a Docker sandbox: write, stream, list and remove, each a short exec as the sandbox's user.

Each command is programs/files.py in a root exec, which takes the sandbox's user before it does
anything; its exit code says what went wrong, in the program's own protocol (no engine or coreutils
wording is parsed). Another command runs as the sandbox's user through programs/as_user.py. Its streams run in the engine's stream threads,
and a command the sandbox stops is hung up after ``engine_timeout``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import (
    AlreadyExists,
    BackendUnavailable,
    InvalidInput,
    IsADirectory,
    NotADirectory,
    NotFound,
    SandboxAnswerInvalid,
    SandboxError,
    TooLarge,
)
from ..models import format_size
from . import programs
from .base import WORKDIR, confine
from .docker_engine import EngineClient, exit_code, frames, hang_up, mapped, raw_socket
from .docker_watch import ExecWatch

if TYPE_CHECKING:  # (only for types: docker.py imports this module)
    from .docker import DockerBackend

# programs/files.py's exit codes
MISSING, NOT_A_DIRECTORY, IS_A_DIRECTORY, NOT_A_FILE, NO_ROOM, EXISTS = 72, 73, 74, 75, 76, 77
Answer = TypeVar("Answer")
EXEC_OUTPUT_LIMIT = 8 << 20  # bytes of a short command's stdout (a listing) or stderr the server takes


def program_answer(out: bytes, kind: type[Answer], what: str) -> Answer:
    """The JSON ``kind`` (dict or list) an in-sandbox program printed; SandboxAnswerInvalid otherwise."""
    try:
        answer = json.loads(out)
    except ValueError:
        answer = None
    if not isinstance(answer, kind):
        raise SandboxAnswerInvalid(f"the sandbox answered {what} with something that is not a JSON {kind.__name__}")
    return answer


def file_error(code: int | None, path: str, err: bytes) -> SandboxError:
    """The project's error for a file command's exit code (and its stderr, when the code says nothing)."""
    if code == MISSING:
        return NotFound(f"no such file or directory: {path}")
    if code == NOT_A_DIRECTORY:
        return NotADirectory(f"not a directory: {path}", field="path")
    if code == IS_A_DIRECTORY:
        return IsADirectory(f"{path} is a directory", field="path")
    if code == EXISTS:
        return AlreadyExists(f"{path} exists already")
    if code == NOT_A_FILE:
        return InvalidInput(f"{path} is not a regular file (a pipe or device cannot be read)", field="path")
    return InvalidInput(f"{path}: {err.decode(errors='replace').strip()[-500:]} (exit code {code})", field="path")


class DockerFiles:
    """The file commands of one backend's sandboxes, and the short exec they share."""

    def __init__(self, backend: DockerBackend) -> None:
        self.backend = backend

    def _files_command(self, sandbox_id: str, command: str, path: str, *args: str) -> list[str]:
        """programs/files.py ``command`` on ``path``, for a root exec (it takes the sandbox's user first)."""
        uid, _, gid = self.backend.containers.ids(sandbox_id)[0].partition(":")
        return [self.backend.python, "-I", "-c", programs.source("files"), uid, gid, command, path, *args]

    async def _json(self, sandbox_id: str, path: str, command: str, *args: str) -> Any:
        """What a files.py command that answers in JSON printed (its exit code as the project's error)."""
        code, out, err = await self._exec(sandbox_id, self._files_command(sandbox_id, command, path, *args))
        if code != 0:
            raise file_error(code, path, err)
        kind: type[Any] = list if command == "tree" else dict
        return program_answer(out, kind, f"{command} {path}")

    async def stat(self, sandbox_id: str, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._json(sandbox_id, confine(path), "stat")
        return entry

    async def tree(self, sandbox_id: str, path: str, depth: int) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self._json(sandbox_id, confine(path), "tree", str(max(1, depth)))
        return entries

    async def make_dir(self, sandbox_id: str, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._json(sandbox_id, confine(path), "mkdir")
        return entry

    async def move(self, sandbox_id: str, source: str, destination: str) -> dict[str, Any]:
        src, dst = confine(source), confine(destination)
        if WORKDIR in (src, dst):
            raise InvalidInput("the working directory itself cannot be moved or replaced", field="path")
        entry: dict[str, Any] = await self._json(sandbox_id, src, "move", dst)
        return entry

    async def watch(self, sandbox_id: str, path: str, recursive: bool) -> ExecWatch:
        target = confine(path)
        argv = self._files_command(sandbox_id, "watch", target, "1" if recursive else "0")
        watch = ExecWatch(self.backend, sandbox_id, argv)
        if not await watch.start():
            code, err = watch.failure or (None, b"")
            raise file_error(code, target, err)
        return watch

    async def run_as_user(self, sandbox_id: str, command: list[str]) -> tuple[int | None, bytes, bytes]:
        """A short command's exit code, stdout and stderr, run as the sandbox's user (programs/as_user.py)."""
        return await self._exec(sandbox_id, self.backend.containers.as_user(sandbox_id, command))

    async def _exec(self, sandbox_id: str, argv: list[str]) -> tuple[int | None, bytes, bytes]:
        """A short root exec's exit code, stdout and stderr (each at most EXEC_OUTPUT_LIMIT bytes); ``argv``
        takes the sandbox's user before it does anything. The sandbox can stop the command: after
        ``engine_timeout`` its stream is hung up, which frees the thread, and the sandbox's owner gets a 503."""
        cid = self.backend.container_id(sandbox_id)
        timeout = self.backend.engine_timeout
        sockets: list[Any] = []

        def run(c: EngineClient) -> tuple[int | None, bytes, bytes]:
            exec_id = c.api.exec_create(cid, argv, user="0:0")["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            sockets.append(sock)
            out, err = bytearray(), bytearray()
            try:
                for stream, data in frames(sock):
                    buffer = out if stream == 1 else err
                    if len(buffer) + len(data) > EXEC_OUTPUT_LIMIT:
                        raise TooLarge(f"the answer from the sandbox is over {format_size(EXEC_OUTPUT_LIMIT)}")
                    buffer += data
            finally:
                hang_up(sock)
            return exit_code(c, exec_id), bytes(out), bytes(err)

        try:
            result: tuple[int | None, bytes, bytes] = await asyncio.wait_for(
                self.backend.engine.call(run, streaming=True), timeout
            )
            return result
        except asyncio.TimeoutError:
            for sock in sockets:
                hang_up(sock)
            raise BackendUnavailable(f"the sandbox did not answer in {timeout:g} s") from None

    async def write(self, sandbox_id: str, path: str, data: bytes) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise IsADirectory("path must name a file", field="path")
        cid = self.backend.container_id(sandbox_id)
        argv = self._files_command(sandbox_id, "write", target)
        timeout = self.backend.engine_timeout

        def stream(c: EngineClient) -> int:
            exec_id = c.api.exec_create(cid, argv, user="0:0", stdin=True)["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            raw = raw_socket(sock)
            raw.settimeout(timeout)  # a writer the sandbox stopped never holds this thread
            try:
                raw.sendall(data)
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):
                    pass
            except OSError:
                pass  # the writer stopped reading (e.g. the disk is full): its exit code says why
            finally:
                hang_up(sock)
            code = exit_code(c, exec_id)
            return -1 if code is None else code

        code = await self.backend.engine.call(stream, streaming=True)
        if code == IS_A_DIRECTORY:
            raise IsADirectory(f"{target} is a directory", field="path")
        if code == NO_ROOM:
            raise TooLarge(f"{target} does not fit: the sandbox's disk is full (nothing was written)")
        if code != 0:
            raise InvalidInput(
                f"could not write {target} (exit code {code}); is the sandbox's disk full?", field="path"
            )

    async def stream(self, sandbox_id: str, path: str) -> AsyncIterator[bytes]:
        target = confine(path)
        async for chunk in self._stdout(sandbox_id, self._files_command(sandbox_id, "read", target), target):
            yield chunk

    async def pack(self, sandbox_id: str) -> AsyncIterator[bytes]:
        """The working directory as a tar archive (programs/files.py ``pack``), in chunks."""
        async for chunk in self._stdout(sandbox_id, self._files_command(sandbox_id, "pack", WORKDIR), WORKDIR, (0, 1)):
            yield chunk

    async def unpack(self, sandbox_id: str, chunks: AsyncIterator[bytes]) -> None:
        """A tar archive extracted into the working directory (programs/files.py ``unpack``), its
        chunks pulled from the event loop by the stream thread as it sends them."""
        cid = self.backend.container_id(sandbox_id)
        argv = self._files_command(sandbox_id, "unpack", WORKDIR)
        timeout = self.backend.engine_timeout
        loop = asyncio.get_running_loop()
        source = aiter(chunks)

        def next_chunk() -> bytes | None:
            async def pull() -> bytes | None:
                return await anext(source, None)

            return asyncio.run_coroutine_threadsafe(pull(), loop).result()

        def send(c: EngineClient) -> tuple[int, bytes]:
            exec_id = c.api.exec_create(cid, argv, user="0:0", stdin=True)["Id"]
            sock = c.api.exec_start(exec_id, socket=True)
            raw = raw_socket(sock)
            raw.settimeout(timeout)
            err = bytearray()
            try:
                while (chunk := next_chunk()) is not None:
                    raw.sendall(chunk)
                raw.shutdown(socket.SHUT_WR)
                for stream, data in frames(sock):
                    if stream == 2 and len(err) < 4096:
                        err += data
            except OSError:
                pass  # tar stopped reading (e.g. the disk is full): its exit code says why
            finally:
                hang_up(sock)
            code = exit_code(c, exec_id)
            return (-1 if code is None else code), bytes(err)

        code, err = await self.backend.engine.call(send, streaming=True)
        if code != 0:
            why = err.decode(errors="replace").strip()[-500:]
            raise TooLarge(f"the files did not fit back into the sandbox (exit code {code}): {why}")

    async def _stdout(
        self, sandbox_id: str, argv: list[str], target: str, fine: tuple[int, ...] = (0,)
    ) -> AsyncIterator[bytes]:
        """A root exec's stdout in chunks (``argv`` takes the sandbox's user first); an exit code
        not in ``fine`` is the project's error for ``target``, raised after the last chunk."""
        cid = self.backend.container_id(sandbox_id)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)
        sockets: list[Any] = []

        def put(item: bytes | BaseException | None) -> None:
            """From the stream thread: one item into the queue, waiting while it is full."""
            asyncio.run_coroutine_threadsafe(chunks.put(item), loop).result()

        def pump(c: EngineClient) -> None:
            """In a stream thread: the exec's stdout into the queue."""
            try:
                exec_id = c.api.exec_create(cid, argv, user="0:0")["Id"]
                sock = c.api.exec_start(exec_id, socket=True)
                sockets.append(sock)
                err = bytearray()
                try:
                    for stream, data in frames(sock):
                        if stream == 1:
                            put(bytes(data))
                        elif len(err) < 4096:
                            err += data
                finally:
                    hang_up(sock)
                code = exit_code(c, exec_id)
                put(None if code in fine else file_error(code, target, bytes(err)))
            except BaseException as e:  # handed to the reader, who raises it
                if not sockets or not getattr(sockets[0], "closed", False):
                    put(mapped(e))

        reader = asyncio.ensure_future(self.backend.engine.call(pump, streaming=True))
        try:
            while (item := await chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not reader.done():  # the reader left early (e.g. the client went away): stop the pump
                for sock in sockets:
                    hang_up(sock)  # wakes its read, even of a command the sandbox stopped
                while not reader.done():
                    try:
                        chunks.get_nowait()
                    except asyncio.QueueEmpty:
                        await asyncio.sleep(0.01)
            await asyncio.gather(reader, return_exceptions=True)

    async def list(self, sandbox_id: str, path: str) -> list[dict[str, Any]]:
        target = confine(path)
        code, out, err = await self._exec(sandbox_id, self._files_command(sandbox_id, "list", target))
        if code != 0:
            raise file_error(code, target, err)
        entries: list[dict[str, Any]] = program_answer(out, list, f"list {target}")
        return entries

    async def remove(self, sandbox_id: str, path: str) -> None:
        target = confine(path)
        if target == WORKDIR:
            raise InvalidInput("refusing to remove the working directory itself", field="path")
        code, _, err = await self._exec(sandbox_id, self._files_command(sandbox_id, "remove", target))
        if code != 0:
            raise file_error(code, target, err)
