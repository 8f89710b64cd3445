"""The Python client: E2B-style ``Sandbox`` / ``AsyncSandbox`` and python-executor-style one-shot calls.

``Sandbox().run_code(code)`` works the way E2B's code-interpreter SDK does (callbacks get
``OutputMessage``, ``Result`` and ``ExecutionError`` as lines arrive), against a Jupyter
server running the jupyter_sandbox extension. Where no server is found, a plain script
gets an in-process ``SandboxManager`` (the same manager code the server runs), so the
E2B examples run as scripts with nothing else started.

One *connection* abstraction, two implementations: ``HTTPConnection`` (REST + NDJSON
streaming with httpx) and ``InProcessConnection`` (a SandboxManager). Both are async and
live on one private event-loop thread; ``Sandbox`` and ``AsyncSandbox`` are thin facades
over it. Events are forwarded to the caller's thread (sync) or loop (async), so
callbacks run where the caller runs -- in a notebook kernel that is the cell's thread,
which keeps output attached to the right cell.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import getpass
import inspect
import io
import json
import os
import queue
import socket
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlparse

from .. import errors
from ..errors import InvalidInput, SandboxError, ServerUnreachable
from ..models import TERMINAL_STATUSES, ContextModel, Execution, ExecutionResult, OutputMessage, SandboxModel

Event = dict[str, Any]
EventSink = Callable[[Event], Any]

HOW_TO_CONNECT = (
    "start one with `jupyter server` (or JupyterLab) with the jupyter_sandbox extension enabled, "
    "or point to one with JUPYTER_SANDBOX_URL and JUPYTER_SANDBOX_TOKEN"
)


# ---------------------------------------------------------------------------------------
# The private event loop every connection lives on


class _LoopThread:
    """One daemon thread running an asyncio loop for all connections of this process.

    A notebook kernel already runs a loop on its main thread, so sync calls cannot use
    ``asyncio.run`` there; and the in-process manager's kernel clients must stay on one loop.
    """

    _instance: _LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="jupyter-sandbox-client", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def submit(self, coro: Awaitable) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Awaitable, timeout: float | None = None) -> Any:
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    async def run_async(self, coro: Awaitable) -> Any:
        return await asyncio.wrap_future(self.submit(coro))


def _loop() -> _LoopThread:
    return _LoopThread.get()


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


# ---------------------------------------------------------------------------------------
# Errors from the server


_BY_STATUS = {
    cls.status: cls
    for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict, errors.TooLarge,
                errors.QuotaExceeded, errors.BackendUnavailable)
}


def error_from_response(status: int, body: bytes) -> SandboxError:
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
        error = SandboxError(message, field=data.get("field"))
        error.status = status
        if data.get("reason"):
            error.reason = data["reason"]
        return error
    return cls(message, field=data.get("field"))


# ---------------------------------------------------------------------------------------
# Connections


class Connection:
    """What the facades need from a server; all coroutines run on the private loop."""

    description = ""

    async def list(self) -> list[SandboxModel]: raise NotImplementedError
    async def create(self, name: str | None, spec: dict[str, Any]) -> SandboxModel: raise NotImplementedError
    async def get(self, key: str) -> SandboxModel: raise NotImplementedError
    async def remove(self, key: str) -> None: raise NotImplementedError
    async def restart(self, key: str) -> SandboxModel: raise NotImplementedError
    async def interrupt(self, key: str) -> None: raise NotImplementedError
    async def stats(self, key: str) -> dict[str, Any]: raise NotImplementedError
    async def list_contexts(self, key: str) -> list[ContextModel]: raise NotImplementedError
    async def create_context(self, key: str, language: str | None, cwd: str | None) -> ContextModel: raise NotImplementedError
    async def remove_context(self, key: str, context_id: str) -> None: raise NotImplementedError
    async def restart_context(self, key: str, context_id: str) -> ContextModel: raise NotImplementedError

    async def execute(self, key: str, body: dict[str, Any], on_event: EventSink) -> None:
        """Run code; ``on_event`` gets each wire event as it arrives (keepalives dropped)."""
        raise NotImplementedError

    async def write_file(self, key: str, path: str, data: bytes) -> None: raise NotImplementedError
    async def read_file(self, key: str, path: str) -> bytes: raise NotImplementedError
    async def list_files(self, key: str, path: str) -> list[dict[str, Any]]: raise NotImplementedError
    async def remove_file(self, key: str, path: str) -> None: raise NotImplementedError

    # one-shot (python-executor's /api/v1 wire format)
    async def oneshot(self, method: str, path: str, **kwargs) -> Any: raise NotImplementedError


def _q(part: str) -> str:
    return quote(str(part), safe="")


class HTTPConnection(Connection):
    """REST + NDJSON against ``{server_url}sandbox/api/``, authenticated with a Jupyter token."""

    def __init__(self, server_url: str, token: str | None = None):
        self.server_url = server_url.rstrip("/") + "/"
        self.token = token or None
        self.description = self.server_url
        self._client = None

    def _http(self):
        import httpx

        if self._client is None:  # created lazily so it belongs to the private loop
            headers = {"Authorization": f"token {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(
                base_url=self.server_url + "sandbox/api/",
                headers=headers,
                timeout=httpx.Timeout(300.0, connect=10.0),  # creating a sandbox may pull/start a kernel
            )
        return self._client

    def _unreachable(self, e: Exception) -> ServerUnreachable:
        return ServerUnreachable(f"cannot reach the jupyter-sandbox server at {self.server_url} ({type(e).__name__}: {e}); "
                                 + HOW_TO_CONNECT)

    async def request(self, method: str, path: str, **kwargs):
        import httpx

        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise self._unreachable(e) from None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return response

    async def _json(self, method: str, path: str, **kwargs) -> Any:
        return (await self.request(method, path, **kwargs)).json()

    async def list(self):
        return [SandboxModel.from_dict(d) for d in await self._json("GET", "sandboxes")]

    async def create(self, name, spec):
        body = {**spec, **({"name": name} if name else {})}
        return SandboxModel.from_dict(await self._json("POST", "sandboxes", json=body))

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
        return ContextModel.from_dict(await self._json("POST", f"sandboxes/{_q(key)}/contexts/{_q(context_id)}/restart"))

    async def execute(self, key, body, on_event):
        import httpx

        try:
            # No read timeout: the server sends keepalive lines during silence and
            # enforces the execution timeout itself.
            async with self._http().stream("POST", f"sandboxes/{_q(key)}/execute", json=body,
                                           timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code >= 400:
                    raise error_from_response(response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") != "keepalive":
                        await _maybe_await(on_event(event))
        except httpx.TransportError as e:
            raise self._unreachable(e) from None

    async def write_file(self, key, path, data):
        await self.request("PUT", f"sandboxes/{_q(key)}/files", params={"path": path}, content=data)

    async def read_file(self, key, path):
        # The body is the file's bytes whatever Content-Type says (jupyter_server's
        # APIHandler labels every answer application/json unless told otherwise).
        response = await self.request("GET", f"sandboxes/{_q(key)}/files", params={"path": path})
        return response.content

    async def list_files(self, key, path):
        response = await self.request("GET", f"sandboxes/{_q(key)}/files", params={"path": path})
        if response.headers.get("content-type", "").startswith("application/octet-stream"):
            raise InvalidInput(f"not a directory: {path}", field="path")
        try:
            entries = response.json()
        except ValueError:
            entries = None
        if not isinstance(entries, list):
            raise InvalidInput(f"not a directory: {path}", field="path")
        return entries

    async def remove_file(self, key, path):
        await self.request("DELETE", f"sandboxes/{_q(key)}/files", params={"path": path})

    async def oneshot(self, method, path, **kwargs):
        response = await self.request(method, "v1/" + path, **kwargs)
        return response.json() if response.content else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class InProcessConnection(Connection):
    """A SandboxManager inside this process (plain scripts with no server to talk to)."""

    def __init__(self):
        self.owner = getpass.getuser()
        # Unique per process (and derivable from the pid): never this user's server's id,
        # so nothing here touches a running server's containers.
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
            _loop().run(self._manager.shutdown(), timeout=120)

    async def list(self):
        return self.manager.list(self.owner)

    async def create(self, name, spec):
        spec = dict(spec)
        kernel_id = spec.pop("kernel_id", None)
        return await self.manager.create(self.owner, name, spec, kernel_id=kernel_id)

    async def get(self, key):
        return self.manager.get(self.owner, key)

    async def remove(self, key):
        await self.manager.remove(self.owner, key)

    async def restart(self, key):
        return await self.manager.restart(self.owner, key)

    async def interrupt(self, key):
        await self.manager.interrupt(self.owner, key)

    async def stats(self, key):
        return await self.manager.stats(self.owner, key)

    async def list_contexts(self, key):
        return self.manager.list_contexts(self.owner, key)

    async def create_context(self, key, language, cwd):
        return await self.manager.create_context(self.owner, key, language=language, cwd=cwd)

    async def remove_context(self, key, context_id):
        await self.manager.remove_context(self.owner, key, context_id)

    async def restart_context(self, key, context_id):
        return await self.manager.restart_context(self.owner, key, context_id)

    async def execute(self, key, body, on_event):
        body = dict(body)
        code = body.pop("code")
        await self.manager.execute(self.owner, key, code, on_event=on_event, **body)

    async def write_file(self, key, path, data):
        await self.manager.write_file(self.owner, key, path, data)

    async def read_file(self, key, path):
        return await self.manager.read_file(self.owner, key, path)

    async def list_files(self, key, path):
        return await self.manager.list_files(self.owner, key, path)

    async def remove_file(self, key, path):
        await self.manager.remove_file(self.owner, key, path)

    async def oneshot(self, method, path, **kwargs):
        raise ServerUnreachable("one-shot executions need a jupyter-sandbox server; " + HOW_TO_CONNECT)


# ---------------------------------------------------------------------------------------
# Finding the server


def _probe(url: str, token: str | None) -> bool:
    """Whether a Jupyter server at ``url`` answers the sandbox API."""
    import httpx

    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        return httpx.get(url.rstrip("/") + "/sandbox/api/sandboxes", headers=headers, timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ServerChoice:
    """The server a client talks to, and why that one (shown by ``%sandbox config``)."""

    url: str
    token: str | None
    why: str


def find_server(server_url: str | None = None, token: str | None = None) -> ServerChoice | None:
    """The server to use, or None when there is none.

    In order: explicit arguments; JUPYTER_SANDBOX_URL / JUPYTER_SANDBOX_TOKEN; a JupyterHub
    single-user server's environment; the Jupyter server that started this kernel (its runtime
    file has the pid jupyter_client puts in JPY_PARENT_PID); else the one local server (runtime
    files) whose extension answers. Several answering is an error that lists them: code must
    not run on a server nobody chose.
    """
    if server_url:
        return ServerChoice(server_url, token or os.environ.get("JUPYTER_SANDBOX_TOKEN"), "given explicitly")
    if os.environ.get("JUPYTER_SANDBOX_URL"):
        return ServerChoice(os.environ["JUPYTER_SANDBOX_URL"], token or os.environ.get("JUPYTER_SANDBOX_TOKEN"),
                            "from JUPYTER_SANDBOX_URL")
    hub_token = os.environ.get("JUPYTERHUB_API_TOKEN")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if hub_token and prefix:
        # The single-user server listens on JUPYTERHUB_SERVICE_URL's port; talk to it locally.
        service = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8888/"))
        return ServerChoice(f"http://127.0.0.1:{service.port or 8888}{prefix}", token or hub_token,
                            "this JupyterHub single-user server")
    try:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
    except Exception:  # unreadable runtime files just mean "no local server"
        servers = []
    parent = os.environ.get("JPY_PARENT_PID")
    for info in servers:
        if parent and str(info.get("pid")) == parent and _probe(info["url"], info.get("token")):
            return ServerChoice(info["url"], info.get("token") or None, "the Jupyter server that started this kernel")
    answering = [info for info in servers if _probe(info["url"], info.get("token"))]
    if len(answering) > 1:
        listed = ", ".join(f"{info['url']} (pid {info.get('pid')})" for info in answering)
        raise ServerUnreachable(
            f"several jupyter-sandbox servers are running: {listed}. Choose one with JUPYTER_SANDBOX_URL "
            "(and JUPYTER_SANDBOX_TOKEN), or server_url=/token= in the call"
        )
    if answering:
        info = answering[0]
        return ServerChoice(info["url"], info.get("token") or None, "the one local Jupyter server with the extension")
    return None


_CONNECTIONS: dict[tuple[str, str | None], Connection] = {}
_IN_PROCESS: InProcessConnection | None = None
_CONNECT_LOCK = threading.Lock()


def connect(server_url: str | None = None, token: str | None = None, *, in_process: bool = True) -> Connection:
    """The connection to use (shared per server); in-process when no server is found.

    ``in_process=False`` (the magics) raises ServerUnreachable instead of falling back.
    """
    global _IN_PROCESS
    found = find_server(server_url, token)
    with _CONNECT_LOCK:
        if found is not None:
            key = (found.url.rstrip("/") + "/", found.token)
            if key not in _CONNECTIONS:
                _CONNECTIONS[key] = HTTPConnection(*key)
            _CONNECTIONS[key].description = f"{key[0]} ({found.why})"
            return _CONNECTIONS[key]
        if not in_process:
            raise ServerUnreachable("no jupyter-sandbox server found: " + HOW_TO_CONNECT)
        if _IN_PROCESS is None:
            _IN_PROCESS = InProcessConnection()
        return _IN_PROCESS


# ---------------------------------------------------------------------------------------
# Sandbox (sync) and AsyncSandbox


def _spec(image, memory, cpus, network, env, timeout, kernel_id=None) -> dict[str, Any]:
    """The create request's body (without the name)."""
    spec = {"image": image, "memory": memory, "cpus": cpus, "env": env, "timeout": timeout, "kernel_id": kernel_id}
    spec = {k: v for k, v in spec.items() if v is not None}
    if network:
        spec["network"] = True
    return spec


def _context_id(context: ContextModel | str | None) -> str | None:
    return context.id if isinstance(context, ContextModel) else context


def _execute_body(code, context, language, envs, timeout) -> dict[str, Any]:
    body = {"code": code, "context_id": _context_id(context), "language": language, "env_vars": envs, "timeout": timeout}
    return {k: v for k, v in body.items() if v is not None}


class _Dispatcher:
    """Folds events into an Execution (Execution.apply_event) and fires E2B-style callbacks."""

    def __init__(self, on_stdout=None, on_stderr=None, on_result=None, on_error=None):
        self.execution = Execution()
        self.callbacks = (on_stdout, on_stderr, on_result, on_error)

    def __call__(self, event: Event) -> Any:
        on_stdout, on_stderr, on_result, on_error = self.callbacks
        self.execution.apply_event(event)
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            callback = on_stdout if kind == "stdout" else on_stderr
            if callback:
                return callback(OutputMessage(event.get("text", ""), event.get("timestamp") or time.time_ns(), kind == "stderr"))
        elif kind == "result" and on_result:
            return on_result(self.execution.results[-1])
        elif kind == "error" and on_error:
            return on_error(self.execution.error)
        return None


_DONE = object()


class _Base:
    def __init__(self, connection: Connection, model: SandboxModel, keep: bool):
        self._connection = connection
        self._model = model
        self.keep = keep

    @property
    def id(self) -> str:
        return self._model.id

    sandbox_id = id  # E2B's name for it

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def connection(self) -> Connection:
        return self._connection

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, name={self.name!r}, server={self._connection.description!r})"


class Sandbox(_Base):
    """A sandbox: a container with stateful kernels ("contexts"), E2B-style.

    ``with Sandbox() as sandbox: sandbox.run_code("x = 1")`` -- the sandbox is removed on
    exit unless ``keep=True``. ``Sandbox.connect(name)`` attaches to an existing one
    (kept on exit by default).
    """

    def __init__(self, name: str | None = None, *, image: str | None = None, memory: str | int | None = None,
                 cpus: float | None = None, network: bool = False, env: dict[str, str] | None = None,
                 timeout: float | None = None, server_url: str | None = None, token: str | None = None,
                 keep: bool = False, kernel_id: str | None = None, _connection: Connection | None = None,
                 _model: SandboxModel | None = None):
        connection = _connection or connect(server_url, token)
        if _model is None:
            spec = _spec(image, memory, cpus, network, env, timeout, kernel_id)
            _model = _loop().run(connection.create(name, spec))
        super().__init__(connection, _model, keep)
        self.files = Files(self)

    def _run(self, coro: Awaitable) -> Any:
        return _loop().run(coro)

    @classmethod
    def connect(cls, name_or_id: str, *, server_url: str | None = None, token: str | None = None,
                keep: bool = True, _connection: Connection | None = None) -> Sandbox:
        connection = _connection or connect(server_url, token)
        model = _loop().run(connection.get(name_or_id))
        return cls(_connection=connection, _model=model, keep=keep)

    @classmethod
    def list(cls, *, server_url: str | None = None, token: str | None = None,
             _connection: Connection | None = None) -> list[SandboxModel]:
        connection = _connection or connect(server_url, token)
        return _loop().run(connection.list())

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.kill()

    @property
    def model(self) -> SandboxModel:
        """The sandbox as the server sees it now."""
        self._model = self._run(self._connection.get(self.id))
        return self._model

    def run_code(self, code: str, *, context: ContextModel | str | None = None, language: str | None = None,
                 on_stdout: Callable[[OutputMessage], Any] | None = None,
                 on_stderr: Callable[[OutputMessage], Any] | None = None,
                 on_result: Callable[[Any], Any] | None = None,
                 on_error: Callable[[Any], Any] | None = None,
                 envs: dict[str, str] | None = None, timeout: float | None = None) -> Execution:
        """Run ``code`` and return its Execution; callbacks fire, on this thread, as output arrives.

        Interrupting the caller (Ctrl-C, a notebook's interrupt) interrupts the sandbox's
        kernel and still returns what the code produced.
        """
        dispatch = _Dispatcher(on_stdout, on_stderr, on_result, on_error)
        events: queue.Queue = queue.Queue()

        async def produce():
            try:
                await self._connection.execute(self.id, _execute_body(code, context, language, envs, timeout), events.put)
            finally:
                events.put(_DONE)

        future = _loop().submit(produce())
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                self.interrupt()
                continue
            if event is _DONE:
                break
            dispatch(event)
        future.result()
        return dispatch.execution

    def create_context(self, *, language: str | None = None, cwd: str | None = None) -> ContextModel:
        return self._run(self._connection.create_context(self.id, language, cwd))

    def list_contexts(self) -> list[ContextModel]:
        return self._run(self._connection.list_contexts(self.id))

    def restart_context(self, context: ContextModel | str) -> ContextModel:
        return self._run(self._connection.restart_context(self.id, _context_id(context)))

    def remove_context(self, context: ContextModel | str) -> None:
        self._run(self._connection.remove_context(self.id, _context_id(context)))

    def interrupt(self) -> None:
        self._run(self._connection.interrupt(self.id))

    def restart(self) -> SandboxModel:
        """A fresh container with the same id and spec: variables and files are lost."""
        self._model = self._run(self._connection.restart(self.id))
        return self._model

    def stats(self) -> dict[str, Any]:
        return self._run(self._connection.stats(self.id))

    def kill(self) -> None:
        """Remove the sandbox."""
        self._run(self._connection.remove(self.id))


class Files:
    """``sandbox.files``: the sandbox's working directory (paths relative to it)."""

    def __init__(self, sandbox: Sandbox):
        self._sandbox = sandbox

    def write(self, path: str, data: str | bytes) -> None:
        payload = data.encode() if isinstance(data, str) else data
        self._sandbox._run(self._sandbox._connection.write_file(self._sandbox.id, path, payload))

    def read(self, path: str, *, format: str = "text") -> str | bytes:
        data = self._sandbox._run(self._sandbox._connection.read_file(self._sandbox.id, path))
        return data if format == "bytes" else data.decode()

    def list(self, path: str = ".") -> list[dict[str, Any]]:
        return self._sandbox._run(self._sandbox._connection.list_files(self._sandbox.id, path))

    def remove(self, path: str) -> None:
        self._sandbox._run(self._sandbox._connection.remove_file(self._sandbox.id, path))


class AsyncSandbox(_Base):
    """The async twin of :class:`Sandbox`: ``sandbox = await AsyncSandbox.create()``.

    Callbacks may be plain functions or coroutine functions; they run on the caller's loop.
    """

    def __init__(self, connection: Connection, model: SandboxModel, keep: bool = False):
        super().__init__(connection, model, keep)
        self.files = AsyncFiles(self)

    async def _run(self, coro: Awaitable) -> Any:
        return await _loop().run_async(coro)

    @classmethod
    async def create(cls, name: str | None = None, *, image: str | None = None, memory: str | int | None = None,
                     cpus: float | None = None, network: bool = False, env: dict[str, str] | None = None,
                     timeout: float | None = None, server_url: str | None = None, token: str | None = None,
                     keep: bool = False, kernel_id: str | None = None) -> AsyncSandbox:
        connection = await asyncio.to_thread(connect, server_url, token)  # probing may block
        spec = _spec(image, memory, cpus, network, env, timeout, kernel_id)
        model = await _loop().run_async(connection.create(name, spec))
        return cls(connection, model, keep)

    @classmethod
    async def connect(cls, name_or_id: str, *, server_url: str | None = None, token: str | None = None,
                      keep: bool = True) -> AsyncSandbox:
        connection = await asyncio.to_thread(connect, server_url, token)
        return cls(connection, await _loop().run_async(connection.get(name_or_id)), keep)

    @classmethod
    async def list(cls, *, server_url: str | None = None, token: str | None = None) -> list[SandboxModel]:
        connection = await asyncio.to_thread(connect, server_url, token)
        return await _loop().run_async(connection.list())

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc) -> None:
        if not self.keep:
            await self.kill()

    async def get_model(self) -> SandboxModel:
        self._model = await self._run(self._connection.get(self.id))
        return self._model

    async def run_code(self, code: str, *, context: ContextModel | str | None = None, language: str | None = None,
                       on_stdout=None, on_stderr=None, on_result=None, on_error=None,
                       envs: dict[str, str] | None = None, timeout: float | None = None) -> Execution:
        dispatch = _Dispatcher(on_stdout, on_stderr, on_result, on_error)
        caller = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def forward(event):
            caller.call_soon_threadsafe(events.put_nowait, event)

        async def produce():
            try:
                await self._connection.execute(self.id, _execute_body(code, context, language, envs, timeout), forward)
            finally:
                forward(_DONE)

        future = asyncio.wrap_future(_loop().submit(produce()))
        try:
            while (event := await events.get()) is not _DONE:
                await _maybe_await(dispatch(event))
        except asyncio.CancelledError:
            future.cancel()
            raise
        await future
        return dispatch.execution

    async def create_context(self, *, language: str | None = None, cwd: str | None = None) -> ContextModel:
        return await self._run(self._connection.create_context(self.id, language, cwd))

    async def list_contexts(self) -> list[ContextModel]:
        return await self._run(self._connection.list_contexts(self.id))

    async def restart_context(self, context: ContextModel | str) -> ContextModel:
        return await self._run(self._connection.restart_context(self.id, _context_id(context)))

    async def remove_context(self, context: ContextModel | str) -> None:
        await self._run(self._connection.remove_context(self.id, _context_id(context)))

    async def interrupt(self) -> None:
        await self._run(self._connection.interrupt(self.id))

    async def restart(self) -> SandboxModel:
        self._model = await self._run(self._connection.restart(self.id))
        return self._model

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._connection.stats(self.id))

    async def kill(self) -> None:
        await self._run(self._connection.remove(self.id))


class AsyncFiles:
    def __init__(self, sandbox: AsyncSandbox):
        self._sandbox = sandbox

    async def write(self, path: str, data: str | bytes) -> None:
        payload = data.encode() if isinstance(data, str) else data
        await self._sandbox._run(self._sandbox._connection.write_file(self._sandbox.id, path, payload))

    async def read(self, path: str, *, format: str = "text") -> str | bytes:
        data = await self._sandbox._run(self._sandbox._connection.read_file(self._sandbox.id, path))
        return data if format == "bytes" else data.decode()

    async def list(self, path: str = ".") -> list[dict[str, Any]]:
        return await self._sandbox._run(self._sandbox._connection.list_files(self._sandbox.id, path))

    async def remove(self, path: str) -> None:
        await self._sandbox._run(self._sandbox._connection.remove_file(self._sandbox.id, path))


# ---------------------------------------------------------------------------------------
# One-shot executions (python-executor's client API, against {server}sandbox/api/v1/)


_TOP_LEVEL_METADATA = ("entrypoint", "docker_image", "requirements_txt", "pre_commands", "stdin", "env_vars", "script_args")


def make_tar(files: dict[str, str | bytes] | Path | str) -> bytes:
    """A tar archive of a {name: content} dict, a file, or a directory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if isinstance(files, dict):
            for name, content in files.items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
                tar.addfile(info, io.BytesIO(data))
        else:
            path = Path(files)
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    if child.is_file():
                        tar.add(child, arcname=str(child.relative_to(path)))
            else:
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def _detect_entrypoint(tar_data: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(tar_data)) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    if "main.py" in names:
        return "main.py"
    python = [n for n in names if n.endswith(".py")]
    if not python:
        raise ValueError("no Python file to run; pass entrypoint=")
    return python[0]


class OneShot:
    """python-executor's client calls, against this project's ``/api/v1`` one-shot routes.

    >>> OneShot().eval("2 + 2").result
    '4'
    """

    def __init__(self, server_url: str | None = None, token: str | None = None, timeout: int = 300):
        self.timeout = timeout
        self._connection = connect(server_url, token, in_process=False)

    def _call(self, method: str, path: str, **kwargs) -> Any:
        return _loop().run(self._connection.oneshot(method, path, timeout=self.timeout, **kwargs))

    @staticmethod
    def _request_parts(files, tar_data, metadata, kwargs) -> dict[str, Any]:
        if tar_data is None:
            if files is None:
                raise ValueError("Either files or tar_data must be provided")
            tar_data = make_tar(files)
        if metadata is None:
            meta = {k: kwargs.pop(k) for k in _TOP_LEVEL_METADATA if k in kwargs}
            meta.setdefault("entrypoint", None)
            if meta["entrypoint"] is None:
                meta["entrypoint"] = _detect_entrypoint(tar_data)
            if kwargs:
                meta["config"] = dict(kwargs)  # timeout_seconds, network_disabled, memory_mb, disk_mb, cpu_shares
            metadata = {k: v for k, v in meta.items() if v is not None}
        elif hasattr(metadata, "to_dict"):
            metadata = metadata.to_dict()
        return {"files": {
            "tar": ("code.tar", tar_data, "application/octet-stream"),
            "metadata": (None, json.dumps(metadata), "application/json"),
        }}

    def execute_sync(self, files=None, tar_data: bytes | None = None, metadata=None, **kwargs) -> ExecutionResult:
        parts = self._request_parts(files, tar_data, metadata, kwargs)
        return ExecutionResult.from_dict(self._call("POST", "exec/sync", **parts))

    def execute_async(self, files=None, tar_data: bytes | None = None, metadata=None, **kwargs) -> str:
        parts = self._request_parts(files, tar_data, metadata, kwargs)
        return self._call("POST", "exec/async", **parts)["execution_id"]

    def get_execution(self, execution_id: str) -> ExecutionResult:
        return ExecutionResult.from_dict(self._call("GET", f"executions/{_q(execution_id)}"))

    def kill(self, execution_id: str) -> None:
        self._call("DELETE", f"executions/{_q(execution_id)}")

    def wait_for_completion(self, execution_id: str, poll_interval: float = 2.0,
                            max_wait: float | None = None) -> ExecutionResult:
        start = time.monotonic()
        while True:
            result = self.get_execution(execution_id)
            if result.status in TERMINAL_STATUSES:
                return result
            if max_wait is not None and time.monotonic() - start > max_wait:
                raise TimeoutError(f"Execution did not complete within {max_wait}s")
            time.sleep(poll_interval)

    def eval(self, code: str, *, files: list[dict[str, str]] | None = None, entrypoint: str | None = None,
             stdin: str | None = None, python_version: str | None = None, timeout_seconds: int | None = None,
             eval_last_expr: bool = True) -> ExecutionResult:
        payload: dict[str, Any] = {"eval_last_expr": eval_last_expr}
        if files is not None:
            payload["files"] = files
        else:
            payload["code"] = code
        if entrypoint is not None:
            payload["entrypoint"] = entrypoint
        if stdin is not None:
            payload["stdin"] = stdin
        if python_version is not None:
            payload["python_version"] = python_version
        if timeout_seconds is not None:
            payload["config"] = {"timeout_seconds": timeout_seconds}
        return ExecutionResult.from_dict(self._call("POST", "eval", json=payload))


__all__ = [
    "AsyncSandbox",
    "Connection",
    "ExecutionResult",
    "HTTPConnection",
    "InProcessConnection",
    "OneShot",
    "Sandbox",
    "connect",
    "ServerChoice",
    "find_server",
    "make_tar",
]
