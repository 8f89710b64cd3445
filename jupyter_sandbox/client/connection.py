"""How a client reaches sandboxes: the ``Connection`` interface, and its HTTP implementation.

``Connection`` is everything ``AsyncSandbox``/``Sandbox``/``OneShot`` need from whatever runs the
sandboxes; they use nothing else. Implementations:

- ``HTTPConnection`` (here): REST + NDJSON to a server with the extension (httpx): the user's
  Jupyter server (API prefix ``sandbox/api/``), or a JupyterHub service at its own base URL,
  token and API prefix.
- ``EmbeddedConnection`` (jupyter_sandbox/embedded.py): a SandboxManager inside this process,
  for plain scripts with no server. It lives outside client/ because it is a server, not a
  client; discovery imports it only when it is the one chosen.

A third implementation (e.g. a Hub service speaking another protocol) subclasses
``Connection`` and implements its coroutines (one raising NotImplementedError means "not
offered"); it keeps no per-sandbox state, and raises the ``SandboxError`` classes of
jupyter_sandbox/errors.py (``error_from_response`` maps HTTP answers to them). Pass it as
``Sandbox(_connection=...)``, or have ``discovery.connect`` choose it.
"""

from __future__ import annotations

import builtins
import inspect
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from .. import errors
from ..errors import ServerUnreachable
from ..models import (
    CommandRequest,
    ContextModel,
    ExecuteRequest,
    InputReply,
    SandboxModel,
    SandboxRequest,
    SnapshotModel,
    VolumeModel,
    VolumeRequest,
)

Event = dict[str, Any]
EventSink = Callable[[Event], Any]

HOW_TO_CONNECT = (
    "start one with `jupyter server` (or JupyterLab) with the jupyter_sandbox extension enabled, "
    "or point to one with JUPYTER_SANDBOX_URL and JUPYTER_SANDBOX_TOKEN"
)

# where a Jupyter server with the extension answers the sandbox API (below its base URL)
JUPYTER_SERVER_API_PREFIX = "sandbox/api/"

_BY_STATUS: dict[int, type[errors.SandboxError]] = {
    cls.status: cls
    for cls in (
        errors.InvalidInput,
        errors.Forbidden,
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
    """What a sandbox client needs from whatever runs sandboxes. Implementations keep no
    per-sandbox state; ``key`` is a sandbox's id or name."""

    description = ""  # where it leads, for people (repr of a sandbox, %sandbox config)

    async def list(self) -> builtins.list[SandboxModel]:
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

    async def list_tree(self, key: str, path: str, depth: int) -> builtins.list[dict[str, Any]]:
        """The entries below ``path``, ``depth`` levels down, each with its details."""
        raise NotImplementedError

    async def file_info(self, key: str, path: str) -> dict[str, Any]:
        raise NotImplementedError

    async def make_dir(self, key: str, path: str) -> dict[str, Any]:
        raise NotImplementedError

    async def move_file(self, key: str, source: str, destination: str) -> dict[str, Any]:
        raise NotImplementedError

    async def watch_dir(self, key: str, path: str, recursive: bool, on_event: EventSink) -> None:
        """Watch a directory until cancelled (or the directory goes): ``on_event`` gets ``start``,
        each ``event`` line, and ``end`` (core/commands.py's watch_events)."""
        raise NotImplementedError

    async def run_command(self, key: str, request: CommandRequest, on_event: EventSink) -> None:
        """Start a command and follow it until it ends: ``on_event`` gets ``start`` (its pid), its
        ``stdout``/``stderr`` and ``end`` (core/commands.py's command_events). Cancelling stops the
        following only: the command runs on."""
        raise NotImplementedError

    async def connect_command(self, key: str, pid: int, on_event: EventSink) -> None:
        """Follow a running command from now on, as ``run_command`` does."""
        raise NotImplementedError

    async def list_commands(self, key: str) -> builtins.list[dict[str, Any]]:
        raise NotImplementedError

    async def kill_command(self, key: str, pid: int) -> None:
        raise NotImplementedError

    async def send_stdin(self, key: str, pid: int, data: str) -> None:
        raise NotImplementedError

    async def set_timeout(self, key: str, seconds: int) -> SandboxModel:
        """The sandbox ends ``seconds`` from now unless set again."""
        raise NotImplementedError

    # -- pause, resume, snapshots, fork (issue 23) --
    async def pause(self, key: str) -> SandboxModel:
        raise NotImplementedError

    async def resume(self, key: str) -> SandboxModel:
        raise NotImplementedError

    async def fork(self, key: str, name: str | None) -> SandboxModel:
        raise NotImplementedError

    async def snapshot(self, key: str, name: str) -> SnapshotModel:
        raise NotImplementedError

    async def list_snapshots(self) -> builtins.list[SnapshotModel]:
        raise NotImplementedError

    async def delete_snapshot(self, name: str) -> None:
        raise NotImplementedError

    # persistent volumes (issue 23): the caller's own
    async def list_volumes(self) -> builtins.list[VolumeModel]:
        raise NotImplementedError

    async def create_volume(self, request: VolumeRequest) -> VolumeModel:
        raise NotImplementedError

    async def get_volume(self, name: str) -> VolumeModel:
        raise NotImplementedError

    async def remove_volume(self, name: str) -> None:
        raise NotImplementedError

    async def oneshot(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the one-shot API (python-executor's /api/v1 wire format)."""
        raise ServerUnreachable("one-shot executions need a jupyter-sandbox server; " + HOW_TO_CONNECT)

    async def close(self) -> None:
        """Let go of what the connection holds (sockets); sandboxes are not touched."""


def url_part(part: str) -> str:
    """``part`` quoted as one segment of a URL path (ids and names may hold '/')."""
    return quote(str(part), safe="")


class HTTPConnection(Connection):
    """REST + NDJSON against ``{base_url}{api_prefix}``, authenticated with a token.

    ``api_prefix`` is ``sandbox/api/`` on a Jupyter server with the extension; a JupyterHub
    service gives its own (its token is a Hub API token, sent the same way). Its httpx client
    belongs to the event loop it is first used on (``connect`` keeps one connection per server
    and loop).
    """

    def __init__(self, base_url: str, token: str | None = None, api_prefix: str = JUPYTER_SERVER_API_PREFIX):
        self.base_url = base_url.rstrip("/") + "/"
        self.token = token or None
        self.api_url = self.base_url + api_prefix.strip("/") + "/"
        self.description = self.base_url
        self._client: httpx.AsyncClient | None = None  # made on first use (on the loop that uses it)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(
                base_url=self.api_url,
                headers=headers,
                timeout=httpx.Timeout(300.0, connect=10.0),  # creating a sandbox may start a container and kernel
            )
        return self._client

    def _unreachable(self, e: Exception) -> ServerUnreachable:
        return ServerUnreachable(
            f"cannot reach the jupyter-sandbox server at {self.base_url} ({type(e).__name__}: {e}); " + HOW_TO_CONNECT
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call to the API (``path`` below its prefix); an error answer raises its SandboxError."""
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.request(method, path, **kwargs)).json()

    async def list(self) -> builtins.list[SandboxModel]:
        return [SandboxModel.from_dict(d) for d in await self._json("GET", "sandboxes")]

    async def list_volumes(self) -> builtins.list[VolumeModel]:
        return [VolumeModel.from_dict(d) for d in await self._json("GET", "volumes")]

    async def create_volume(self, request: VolumeRequest) -> VolumeModel:
        return VolumeModel.from_dict(await self._json("POST", "volumes", json=request.given()))

    async def get_volume(self, name: str) -> VolumeModel:
        return VolumeModel.from_dict(await self._json("GET", f"volumes/{url_part(name)}"))

    async def remove_volume(self, name: str) -> None:
        await self.request("DELETE", f"volumes/{url_part(name)}")

    async def create(self, request: SandboxRequest) -> SandboxModel:
        return SandboxModel.from_dict(await self._json("POST", "sandboxes", json=request.given()))

    async def get(self, key: str) -> SandboxModel:
        return SandboxModel.from_dict(await self._json("GET", f"sandboxes/{url_part(key)}"))

    async def remove(self, key: str) -> None:
        await self.request("DELETE", f"sandboxes/{url_part(key)}")

    async def restart(self, key: str) -> SandboxModel:
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/restart"))

    async def interrupt(self, key: str) -> None:
        await self.request("POST", f"sandboxes/{url_part(key)}/interrupt")

    async def stats(self, key: str) -> dict[str, Any]:
        stats: dict[str, Any] = await self._json("GET", f"sandboxes/{url_part(key)}/stats")
        return stats

    async def list_contexts(self, key: str) -> builtins.list[ContextModel]:
        return [ContextModel.from_dict(d) for d in await self._json("GET", f"sandboxes/{url_part(key)}/contexts")]

    async def create_context(self, key: str, language: str | None, cwd: str | None) -> ContextModel:
        body = {k: v for k, v in (("language", language), ("cwd", cwd)) if v is not None}
        return ContextModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/contexts", json=body))

    async def remove_context(self, key: str, context_id: str) -> None:
        await self.request("DELETE", f"sandboxes/{url_part(key)}/contexts/{url_part(context_id)}")

    async def restart_context(self, key: str, context_id: str) -> ContextModel:
        return ContextModel.from_dict(
            await self._json("POST", f"sandboxes/{url_part(key)}/contexts/{url_part(context_id)}/restart")
        )

    async def stream(self, method: str, path: str, on_event: EventSink, **kwargs: Any) -> None:
        """An NDJSON answer, each line to ``on_event`` as it arrives (keepalives dropped)."""
        try:
            # No read timeout: the server sends keepalive lines during silence (and enforces an
            # execution's timeout itself).
            async with self._http().stream(method, path, timeout=httpx.Timeout(30.0, read=None), **kwargs) as response:
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

    async def execute(self, key: str, request: ExecuteRequest, on_event: EventSink) -> None:
        await self.stream("POST", f"sandboxes/{url_part(key)}/execute", on_event, json=request.given())

    async def answer_input(self, key: str, context_id: str, reply: InputReply) -> None:
        await self.request(
            "POST", f"sandboxes/{url_part(key)}/contexts/{url_part(context_id)}/input", json=reply.given()
        )

    async def write_file(self, key: str, path: str, data: bytes) -> None:
        await self.request("PUT", f"sandboxes/{url_part(key)}/files", params={"path": path}, content=data)

    async def read_file(self, key: str, path: str) -> bytes:
        response = await self.request("GET", f"sandboxes/{url_part(key)}/files", params={"path": path, "type": "file"})
        return response.content

    async def list_files(self, key: str, path: str) -> builtins.list[dict[str, Any]]:
        listing: builtins.list[dict[str, Any]] = await self._json(
            "GET", f"sandboxes/{url_part(key)}/files", params={"path": path, "type": "dir"}
        )
        return listing

    async def remove_file(self, key: str, path: str) -> None:
        await self.request("DELETE", f"sandboxes/{url_part(key)}/files", params={"path": path})

    async def list_tree(self, key: str, path: str, depth: int) -> builtins.list[dict[str, Any]]:
        params = {"path": path, "type": "dir", "depth": str(depth)}
        listing: builtins.list[dict[str, Any]] = await self._json(
            "GET", f"sandboxes/{url_part(key)}/files", params=params
        )
        return listing

    async def file_info(self, key: str, path: str) -> dict[str, Any]:
        info: dict[str, Any] = await self._json("GET", f"sandboxes/{url_part(key)}/files/info", params={"path": path})
        return info

    async def make_dir(self, key: str, path: str) -> dict[str, Any]:
        info: dict[str, Any] = await self._json("POST", f"sandboxes/{url_part(key)}/files/dir", params={"path": path})
        return info

    async def move_file(self, key: str, source: str, destination: str) -> dict[str, Any]:
        body = {"source": source, "destination": destination}
        info: dict[str, Any] = await self._json("POST", f"sandboxes/{url_part(key)}/files/move", json=body)
        return info

    async def watch_dir(self, key: str, path: str, recursive: bool, on_event: EventSink) -> None:
        params = {"path": path, "recursive": "true" if recursive else "false"}
        await self.stream("GET", f"sandboxes/{url_part(key)}/watch", on_event, params=params)

    async def run_command(self, key: str, request: CommandRequest, on_event: EventSink) -> None:
        await self.stream("POST", f"sandboxes/{url_part(key)}/commands", on_event, json=request.given())

    async def connect_command(self, key: str, pid: int, on_event: EventSink) -> None:
        await self.stream("GET", f"sandboxes/{url_part(key)}/commands/{pid}", on_event)

    async def list_commands(self, key: str) -> builtins.list[dict[str, Any]]:
        found: builtins.list[dict[str, Any]] = await self._json("GET", f"sandboxes/{url_part(key)}/commands")
        return found

    async def kill_command(self, key: str, pid: int) -> None:
        await self.request("DELETE", f"sandboxes/{url_part(key)}/commands/{pid}")

    async def send_stdin(self, key: str, pid: int, data: str) -> None:
        await self.request("POST", f"sandboxes/{url_part(key)}/commands/{pid}/stdin", json={"data": data})

    async def set_timeout(self, key: str, seconds: int) -> SandboxModel:
        body = {"timeout": seconds}
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/timeout", json=body))

    async def pause(self, key: str) -> SandboxModel:
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/pause"))

    async def resume(self, key: str) -> SandboxModel:
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/resume"))

    async def fork(self, key: str, name: str | None) -> SandboxModel:
        body = {"name": name} if name else {}
        return SandboxModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/fork", json=body))

    async def snapshot(self, key: str, name: str) -> SnapshotModel:
        body = {"name": name}
        return SnapshotModel.from_dict(await self._json("POST", f"sandboxes/{url_part(key)}/snapshots", json=body))

    async def list_snapshots(self) -> builtins.list[SnapshotModel]:
        return [SnapshotModel.from_dict(d) for d in await self._json("GET", "snapshots")]

    async def delete_snapshot(self, name: str) -> None:
        await self.request("DELETE", f"snapshots/{url_part(name)}")

    async def oneshot(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, "v1/" + path, **kwargs)
        return response.json() if response.content else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
