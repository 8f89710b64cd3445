"""The Docker engine as the backend's parts reach it: one docker-py client, two thread pools, errors mapped.

Every call to the engine goes through ``DockerEngine.call`` (the test of the hot path counts them
there). docker-py itself is imported on first use, in this module only: the import takes ~0.3 s,
which a server on the local backend and the CLI's other commands never need.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import BackendUnavailable, InvalidInput, NotFound

EngineClient = Any  # docker.DockerClient: docker-py ships no types


def hang_up(sock: Any) -> None:
    """End an exec or attach stream at once: shut the socket down (waking a thread blocked reading
    it, which a mere close does not), then close it."""
    raw = getattr(sock, "_sock", sock)  # docker-py's SocketIO drops it (None) once closed
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
    sock.close()


def raw_socket(sock: Any) -> socket.socket:
    """The socket under docker-py's stream wrapper (itself when it is one)."""
    raw: socket.socket = getattr(sock, "_sock", sock)
    return raw


def frames(sock: Any) -> Iterator[tuple[int, bytes]]:
    """(stream, data) of a multiplexed exec or attach stream: 1 is stdout, 2 stderr."""
    from docker.utils.socket import frames_iter  # deferred: docker-py (see the module's docstring)

    stream: Iterator[tuple[int, bytes]] = frames_iter(sock, tty=False)
    return stream


def exit_code(client: EngineClient, exec_id: str) -> int | None:
    """An exec's exit code once it ended (the engine may still say Running just after its stream
    closed); None if it does not end within 2 s. Blocking: call it in an engine thread."""
    for _ in range(100):
        state = client.api.exec_inspect(exec_id)
        if not state["Running"]:
            code: int | None = state["ExitCode"]
            return code
        time.sleep(0.02)
    return None


def mapped(e: BaseException) -> BaseException:
    """The project's error for an engine error (by class, never by wording); others as they are."""
    import docker.errors  # deferred: docker-py (see the module's docstring)

    if isinstance(e, docker.errors.ImageNotFound):
        return InvalidInput(
            f"image not found on this host: {e.explanation}. Build the default one with "
            "scripts/build-images.sh, or `docker pull` / `docker build` the one you named",
            field="image",
        )
    if isinstance(e, docker.errors.NotFound):
        return NotFound(f"container gone: {e.explanation}")
    if isinstance(e, docker.errors.DockerException):  # APIError included
        return BackendUnavailable(f"Docker engine error: {getattr(e, 'explanation', None) or e}")
    return e


DEFAULT_SOCKET = "/var/run/docker.sock"
# what to do when the user may not open the engine's socket
PERMISSION_FIX = (
    "on a shared host use the sandbox service, see docs/jupyterhub.md; or add the user to the docker group, "
    "which is root on the host"
)


def engine_address(docker_url: str = "") -> str:
    """Where docker-py looks for the engine: ``docker_url``, else DOCKER_HOST, else the default socket."""
    return docker_url or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def permission_denied(e: BaseException) -> bool:
    """Whether a PermissionError lies under ``e`` (docker-py and requests wrap it, as a cause or an argument)."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        error = todo.pop()
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, PermissionError):
            return True
        todo.extend(x for x in (error.__cause__, error.__context__, *error.args) if isinstance(x, BaseException))
    return False


def engine_problem(docker_url: str = "") -> str | None:
    """Why no Docker engine answers at ``docker_url`` ('' = DOCKER_HOST or the default socket); None if one does."""
    import docker  # deferred: docker-py (see the module's docstring)

    try:
        client = docker.DockerClient(base_url=docker_url) if docker_url else docker.from_env()
        client.ping()
        client.close()
        return None
    except Exception as e:
        return unreachable(e, docker_url)


def why_unreachable(e: BaseException, docker_url: str = "") -> tuple[str, str]:
    """What an error of connecting to the engine means, and its fix when it is not "start an engine"."""
    address = engine_address(docker_url)
    if permission_denied(e):  # an engine may well be there: starting one is not the fix
        return f"your user cannot open {address.removeprefix('unix://')} (permission denied)", PERMISSION_FIX
    return f"no Docker engine answers at {address} ({type(e).__name__}: {e})", ""


def unreachable(e: BaseException, docker_url: str = "") -> str:
    """What an error of connecting to the engine means, for a person, with its fix if it has its own."""
    problem, fix = why_unreachable(e, docker_url)
    return f"{problem}: {fix}" if fix else problem


def engine_available(docker_url: str = "") -> bool:
    """Whether a Docker engine answers at ``docker_url`` ('' = DOCKER_HOST or the default socket)."""
    return engine_problem(docker_url) is None


class DockerEngine:
    """The docker-py client (made and pinged on first use) and the threads that call it."""

    def __init__(self, docker_url: str, timeout: float, engine_threads: int, stream_threads: int) -> None:
        self.docker_url = docker_url
        self.timeout = timeout
        self._client: EngineClient | None = None
        self._executor = ThreadPoolExecutor(max_workers=engine_threads, thread_name_prefix="jsbx-docker")
        self._streams = ThreadPoolExecutor(max_workers=stream_threads, thread_name_prefix="jsbx-stream")

    def client(self) -> EngineClient:
        """The docker-py client. Only called in the engine's threads (it may connect)."""
        if self._client is None:
            import docker  # deferred: docker-py (see the module's docstring)

            try:
                client = (
                    docker.DockerClient(base_url=self.docker_url, timeout=int(self.timeout))
                    if self.docker_url
                    else docker.from_env(timeout=int(self.timeout))
                )
                client.ping()
            except Exception as e:
                if permission_denied(e):  # an engine is there: starting one is not the fix
                    raise BackendUnavailable(f"Docker engine not reachable: {unreachable(e, self.docker_url)}") from e
                raise BackendUnavailable(
                    f"Docker engine not reachable: {unreachable(e, self.docker_url)}. Start it (scripts/setup-docker.sh "
                    "does on Debian), point DOCKER_HOST at it, or set c.SandboxApp.backend = 'local'."
                ) from e
            self._client = client
        return self._client

    async def call(self, fn: Callable[[EngineClient], Any], *, streaming: bool = False) -> Any:
        """``fn(docker_client)`` in a thread, engine errors mapped. Short API calls share the
        engine's pool; ``streaming`` ones (reading a run's output, moving a file) that last as long
        as the sandbox makes them last get the streams' pool, so they never hold up the others."""
        pool = self._streams if streaming else self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, lambda: fn(self.client()))
        except Exception as e:
            raise mapped(e) from e

    async def remove_container(self, container_id: str) -> None:
        """Remove a container, running or not; nothing if it is gone or being removed already."""
        import docker.errors  # deferred: docker-py (see the module's docstring)

        def remove(c: EngineClient) -> None:
            try:
                c.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass  # gone already
            except docker.errors.APIError as e:
                if e.status_code != 409:  # 409: a removal of it is already under way
                    raise

        await self.call(remove)

    async def close(self) -> None:
        """Close the client (the pools' threads end with the process)."""
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
