"""How a client reaches sandboxes: one interface, two implementations.

``HTTPConnection`` talks REST + NDJSON to a Jupyter server with the extension (httpx).
``InProcessConnection`` runs a SandboxManager in this process, for plain scripts with no
server to talk to. Both are used only through ``Connection``'s coroutines.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import getpass
import inspect
import json
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from .. import errors
from ..errors import ServerUnreachable
from ..models import ContextModel, ExecuteRequest, InputReply, SandboxModel, SandboxRequest
from .loop import private_loop

Event = dict[str, Any]
EventSink = Callable[[Event], Any]

HOW_TO_CONNECT = (
    "start one with `jupyter server` (or JupyterLab) with the jupyter_sandbox extension enabled, "
    "or point to one with JUPYTER_SANDBOX_URL and JUPYTER_SANDBOX_TOKEN"
)

_BY_STATUS = {
    cls.status: cls
    for cls in (
        errors.InvalidInput,
        errors.NotFound,
        errors.Conflict,
        errors.TooLarge,
        errors.QuotaExceeded,
        errors.BackendUnavailable,
    )
}


def error_from_response(status: int, body: bytes) -> errors.SandboxError:
    """The SandboxError subclass for an HTTP error answer, carrying the server's message."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = data.get("message") or body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    cls = _BY_STATUS.get(status)
    if cls is None:
        error = errors.SandboxError(message, field=data.get("field"))
        error.status = status
        if data.get("reason"):
            error.reason = data["reason"]
        return error
    return cls(message, field=data.get("field"))


async def maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Connection:
    """What a sandbox client needs from a server. Implementations keep no per-sandbox state."""

    description = ""

    async def list(self) -> list[SandboxModel]:
        raise NotImplementedError

    async def create(self, request: SandboxRequest) -> SandboxModel:
        raise NotImplementedError

    async def get(self, key: str) -> SandboxModel:
        raise NotImplementedError

    async def remove(self, key: str) -> None:
        raise NotImplementedError

    async def restart(self, key: str) -> SandboxModel:
        raise NotImplementedError

    async def interrupt(self, key: str) -> None:
        raise NotImplementedError

    async def stats(self, key: str) -> dict[str, Any]:
        raise NotImplementedError

    async def list_contexts(self, key: str) -> builtins.list[ContextModel]:
        raise NotImplementedError

    async def create_context(self, key: str, language: str | None, cwd: str | None) -> ContextModel:
        raise NotImplementedError

    async def remove_context(self, key: str, context_id: str) -> None:
        raise NotImplementedError

    async def restart_context(self, key: str, context_id: str) -> ContextModel:
        raise NotImplementedError

    async def execute(self, key: str, request: ExecuteRequest, on_event: EventSink) -> None:
        """Run code; ``on_event`` gets each wire event as it arrives (keepalives dropped)."""
        raise NotImplementedError

    async def answer_input(self, key: str, context_id: str, reply: InputReply) -> None:
        """Answer (or refuse) the input() an ``input_request`` event announced."""
        raise NotImplementedError

    async def write_file(self, key: str, path: str, data: bytes) -> None:
        raise NotImplementedError

    async def read_file(self, key: str, path: str) -> bytes:
        raise NotImplementedError

    async def list_files(self, key: str, path: str) -> builtins.list[dict[str, Any]]:
        raise NotImplementedError

    async def remove_file(self, key: str, path: str) -> None:
        raise NotImplementedError

    async def oneshot(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the one-shot API (python-executor's /api/v1 wire format)."""
        raise ServerUnreachable("one-shot executions need a jupyter-sandbox server; " + HOW_TO_CONNECT)


def _q(part: str) -> str:
    return quote(str(part), safe="")


class HTTPConnection(Connection):
    """REST + NDJSON against ``{server_url}sandbox/api/``, authenticated with a Jupyter token.

    Its httpx client belongs to the event loop it is first used on (``connect`` keeps one
    connection per server and loop).
    """

    def __init__(self, server_url: str, token: str | None = None):
        self.server_url = server_url.rstrip("/") + "/"
        self.token = token or None
        self.description = self.server_url
        self._client: Any = None  # an httpx.AsyncClient, made on first use (on the loop that uses it)

    def _http(self):
        import httpx

        if self._client is None:
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(
                base_url=self.server_url + "sandbox/api/",
                headers=headers,
                timeout=httpx.Timeout(300.0, connect=10.0),  # creating a sandbox may start a container and kernel
            )
        return self._client

    def _unreachable(self, e: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the jupyter-sandbox server at {self.server_url} ({type(e).__name__}: {e}); " + HOW_TO_CONNECT
        )

    async def request(self, method: str, path: str, **kwargs: Any):
        import httpx

        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.request(method, path, **kwargs)).json()

    async def list(self):
        return [SandboxModel.from_dict(d) for d in await self._json("GET", "sandboxes")]

    async def create(self, request):
        return SandboxModel.from_dict(await self._json("POST", "sandboxes", json=request.given()))

    async def get(self, key):
        return SandboxModel.from_dict(await self._json("GET", f"sandboxes/{_q(key)}"))

    async def remove(self, key):
        await self.request("DELETE", f"sandboxes/{_q(key)}")

    async def restart(self, key):
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{_q(key)}/restart"))

    async def interrupt(self, key):
        await self.request("POST", f"sandboxes/{_q(key)}/interrupt")

    async def stats(self, key):
        return await self._json("GET", f"sandboxes/{_q(key)}/stats")

    async def list_contexts(self, key):
        return [ContextModel.from_dict(d) for d in await self._json("GET", f"sandboxes/{_q(key)}/contexts")]

    async def create_context(self, key, language, cwd):
        body = {k: v for k, v in (("language", language), ("cwd", cwd)) if v is not None}
        return ContextModel.from_dict(await self._json("POST", f"sandboxes/{_q(key)}/contexts", json=body))

    async def remove_context(self, key, context_id):
        await self.request("DELETE", f"sandboxes/{_q(key)}/contexts/{_q(context_id)}")

    async def restart_context(self, key, context_id):
        return ContextModel.from_dict(
            await self._json("POST", f"sandboxes/{_q(key)}/contexts/{_q(context_id)}/restart")
        )

    async def execute(self, key, request, on_event):
        import httpx

        try:
            # No read timeout: the server sends keepalive lines during silence and
            # enforces the execution timeout itself.
            async with self._http().stream(
                "POST", f"sandboxes/{_q(key)}/execute", json=request.given(), timeout=httpx.Timeout(30.0, read=None)
            ) as response:
                if response.status_code >= 400:
                    raise error_from_response(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") != "keepalive":
                        await maybe_await(on_event(event))
        except httpx.TransportError as e:
            raise self._unreachable(e) from None

    async def answer_input(self, key, context_id, reply):
        await self.request("POST", f"sandboxes/{_q(key)}/contexts/{_q(context_id)}/input", json=reply.given())

    async def write_file(self, key, path, data):
        await self.request("PUT", f"sandboxes/{_q(key)}/files", params={"path": path}, content=data)

    async def read_file(self, key, path):
        response = await self.request("GET", f"sandboxes/{_q(key)}/files", params={"path": path, "type": "file"})
        return response.content

    async def list_files(self, key, path):
        return await self._json("GET", f"sandboxes/{_q(key)}/files", params={"path": path, "type": "dir"})

    async def remove_file(self, key, path):
        await self.request("DELETE", f"sandboxes/{_q(key)}/files", params={"path": path})

    async def oneshot(self, method, path, **kwargs):
        response = await self.request(method, "v1/" + path, **kwargs)
        return response.json() if response.content else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class InProcessConnection(Connection):
    """A SandboxManager inside this process (plain scripts with no server to talk to).

    The manager and its kernel clients live on the client's private loop thread whatever loop
    calls; events are handed back to the caller's loop.
    """

    def __init__(self):
        self.owner = getpass.getuser()
        # Unique per process (and derivable from the pid): never a server's id, so nothing
        # here touches a running server's containers.
        self.server_id = f"inproc-{socket.gethostname()}-{os.getpid()}"
        self._manager = None
        self._lock = threading.Lock()
        self.description = "in-process"
        atexit.register(self._shutdown)

    @property
    def manager(self):
        with self._lock:
            if self._manager is None:
                from ..backends import make_backend
                from ..core.manager import SandboxManager

                backend = make_backend("auto")
                self._manager = SandboxManager(backend=backend, server_id=self.server_id, reap_on_start=False)
                self.description = f"in-process ({backend.name} backend)"
            return self._manager

    def _shutdown(self) -> None:
        # Containers must not outlive the script that made them.
        if self._manager is not None and self._manager.list():
            private_loop().run(self._manager.shutdown(), timeout=120)

    @staticmethod
    async def _there(coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on the private loop (where the manager lives), from any loop."""
        loop = private_loop()
        if asyncio.get_running_loop() is loop.loop:
            return await coro
        return await loop.run_async(coro)

    async def list(self):
        return self.manager.list(self.owner)

    async def create(self, request):
        return await self._there(
            self.manager.create(self.owner, request.name, request.spec(), kernel_id=request.kernel_id)
        )

    async def get(self, key):
        return self.manager.get(self.owner, key)

    async def remove(self, key):
        await self._there(self.manager.remove(self.owner, key))

    async def restart(self, key):
        return await self._there(self.manager.restart(self.owner, key))

    async def interrupt(self, key):
        await self._there(self.manager.interrupt(self.owner, key))

    async def stats(self, key):
        return await self._there(self.manager.stats(self.owner, key))

    async def list_contexts(self, key):
        return self.manager.list_contexts(self.owner, key)

    async def create_context(self, key, language, cwd):
        return await self._there(self.manager.create_context(self.owner, key, language=language, cwd=cwd))

    async def remove_context(self, key, context_id):
        await self._there(self.manager.remove_context(self.owner, key, context_id))

    async def restart_context(self, key, context_id):
        return await self._there(self.manager.restart_context(self.owner, key, context_id))

    async def execute(self, key, request, on_event):
        caller = asyncio.get_running_loop()
        if caller is private_loop().loop:
            sink = on_event
        else:  # events happen on the private loop; the caller's callbacks run on its own loop
            queue: asyncio.Queue = asyncio.Queue()

            def sink(event):
                caller.call_soon_threadsafe(queue.put_nowait, event)

        run = self.manager.execute(self.owner, key, request.code, on_event=sink, **request.options())
        if sink is on_event:
            await run
            return
        done = asyncio.ensure_future(private_loop().run_async(run))
        done.add_done_callback(lambda _: queue.put_nowait(None))
        while (event := await queue.get()) is not None:
            await maybe_await(on_event(event))
        await done

    async def answer_input(self, key, context_id, reply):
        async def answer():
            self.manager.answer_input(self.owner, key, context_id, value=reply.value, error=reply.error)

        await self._there(answer())

    async def write_file(self, key, path, data):
        await self._there(self.manager.write_file(self.owner, key, path, data))

    async def read_file(self, key, path):
        return await self._there(self.manager.read_file(self.owner, key, path))

    async def list_files(self, key, path):
        return await self._there(self.manager.list_files(self.owner, key, path))

    async def remove_file(self, key, path):
        await self._there(self.manager.remove_file(self.owner, key, path))
