"""Thin REST handlers: parse the request shape (models.py), call the manager, write JSON.

Errors go through one mapping: a SandboxError's ``status`` is the HTTP status, its message
the body's ``message``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..core.manager import SandboxManager
from ..errors import Forbidden, InvalidInput, NotADirectory, SandboxError, TooLarge
from ..models import (
    ContextRequest,
    ExecuteRequest,
    Execution,
    InputReply,
    InterruptRequest,
    SandboxModel,
    SandboxRequest,
)
from .notebook_paths import kernel_paths, notebook_path

if TYPE_CHECKING:
    from .app import SandboxApp  # app.py imports this module: its class is a type here only

AUTH_RESOURCE = "sandboxes"
API = "sandbox/api"
SHARED_TOKEN_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)
SHARED_OWNER = "owner"
# Which of a Hub user's servers a request came through (its JUPYTERHUB_SERVER_NAME; '' = the default
# server): sent by a single-user server in Hub mode, kept in the sandbox's spec metadata under
# HUB_SERVER_KEY (so it survives a restart), for the service's on_server_stop rule.
HUB_SERVER_HEADER = "X-Jupyter-Sandbox-Server"
HUB_SERVER_KEY = "jupyterhub_server"


VerbMethod = TypeVar("VerbMethod", bound=Callable[..., Awaitable[None]])


def authorized_to(action: str) -> Callable[[VerbMethod], VerbMethod]:
    """jupyter_server's ``@authorized(action)``, typed: it declares its result as a bare type variable."""
    return cast("Callable[[VerbMethod], VerbMethod]", authorized(action))


def api_path(*parts: str) -> str:
    return url_path_join("/", API, *parts)


def owner_of(handler: JupyterHandler) -> str:
    """Whose sandboxes an authenticated request acts on: the one rule for every route, the event
    stream and the kernels a request starts."""
    if type(handler.identity_provider) in SHARED_TOKEN_PROVIDERS:
        # jupyter_server's built-in providers cannot tell token holders apart: each
        # cookie-less token request gets a new random "anonymous" username. Everyone
        # holding this server's token or password is its one owner.
        return SHARED_OWNER
    username: str = handler.current_user.username
    return username


def is_admin(handler: JupyterHandler) -> bool:
    """Whether an authenticated request may see and stop every user's sandboxes: its identity says so
    (the Hub service's users with the admin scope); nobody is in a plain Jupyter server."""
    return bool(getattr(handler.current_user, "sandbox_admin", False))


def not_authenticated() -> Forbidden:
    return Forbidden(
        "not authenticated: the request carries no token, or one this server does not accept "
        "(send `Authorization: token TOKEN` with the server's token, as `jupyter server list` shows it)"
    )


def refuse_upgrade(handler: JupyterHandler, e: SandboxError) -> None:
    """A websocket route's answer to a request it refuses before the upgrade: the error as JSON."""
    handler.log.warning("jupyter-sandbox: %s %s -> %s %s", handler.request.method, handler.request.path, e.status, e)
    handler.set_status(e.status, e.reason)
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps(e.to_dict()))


class SandboxAPIHandler(APIHandler):
    """Base: owner from jupyter_server's identity, JSON bodies, project errors -> HTTP."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> SandboxManager:
        manager: SandboxManager = self.settings["sandbox_manager"]
        return manager

    @property
    def sandbox_app(self) -> SandboxApp:
        app: SandboxApp = self.settings["sandbox_app"]
        return app

    @property
    def owner(self) -> str:
        return owner_of(self)

    # Jupyter's own answers to a request that named nobody are a bare 403 ("Forbidden"), or on a POST
    # "'_xsrf' argument missing", which sends people after the wrong problem: say what is wrong.
    def check_xsrf_cookie(self) -> None:
        if hasattr(self, "_jupyter_current_user") and self.current_user is None:  # (set by prepare)
            raise not_authenticated()
        return super().check_xsrf_cookie()

    def get_login_url(self) -> str:  # what @web.authenticated asks for when nobody is logged in
        if not self.current_user:
            raise not_authenticated()
        return super().get_login_url()

    def check_own_kernel(self, kernel_id: str) -> None:
        """A sandbox tied to a kernel belongs to whoever started the kernel (unknown: started before
        the extension knew): another user's kernel is refused like one that does not run."""
        if (
            kernel_id not in self.kernel_manager
            or self.sandbox_app.kernel_starters.get(kernel_id, self.owner) != self.owner
        ):
            raise InvalidInput(
                f"kernel_id {kernel_id!r} is not a running kernel of this server that you started; a "
                "sandbox can only be tied to your own notebook kernels on this server",
                field="kernel_id",
            )

    def json_body(self) -> Any:
        """The request body as decoded JSON (400 naming the problem; 413 over the size limit)."""
        body = self.request.body or b""
        if len(body) > self.sandbox_app.max_body_size:
            raise TooLarge(f"request body over {self.sandbox_app.max_body_size} bytes")
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidInput(f"request body is not valid JSON: {e}", field="body") from None
        except RecursionError:
            raise InvalidInput("request body is nested too deeply", field="body") from None

    async def notebook_paths(self) -> dict[str, str]:
        """Kernel id -> the notebook that holds it now, for `model_dict`'s notebook_path."""
        return await kernel_paths(self.settings.get("session_manager"))

    def model_dict(self, model: SandboxModel, paths: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A SandboxModel as the API shows it: its e2b_url made absolute for the caller, and its
        notebook's path when `paths` (from `notebook_paths`) are given."""
        data = model.to_dict()
        if paths is not None:
            data["notebook_path"] = notebook_path(model, paths)
        if model.e2b_url:
            # Unless configured, the host the caller used reaches this server (a proxy's public host included).
            origin = self.sandbox_app.public_url.rstrip("/") or f"{self.request.protocol}://{self.request.host}"
            data["e2b_url"] = origin + model.e2b_url
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SandboxError):
            level = self.log.warning if e.status < 500 else self.log.error
            level("jupyter-sandbox: %s %s -> %s %s", self.request.method, self.request.path, e.status, e.message)
            if self._finished:
                return
            if self._headers_written:
                # Mid-stream (NDJSON): the status is already sent; say it as a line.
                self.write(
                    json.dumps({"type": "error", "name": type(e).__name__, "value": e.message, "traceback": ""}) + "\n"
                )
                self.finish()
                return
            self.clear()
            self.set_status(e.status, e.reason)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(self.error_body(e)))
            return
        super()._handle_request_exception(e)

    def error_body(self, e: SandboxError) -> dict[str, Any]:
        """The JSON body of an error answer (a route for another API's clients may shape it their way)."""
        return e.to_dict()


# ---------------------------------------------------------------------------------------
# Sandboxes


class SandboxesHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        paths = await self.notebook_paths()
        self.write_json([self.model_dict(m, paths) for m in self.manager.list(self.owner)])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = SandboxRequest.parse(self.json_body())
        if request.kernel_id is not None:
            self.check_own_kernel(request.kernel_id)
        spec = request.spec()
        # only the header says which server a sandbox came through, never the body
        metadata = {k: v for k, v in (spec.metadata or {}).items() if k != HUB_SERVER_KEY}
        server = self.request.headers.get(HUB_SERVER_HEADER)
        if server is not None:
            metadata[HUB_SERVER_KEY] = server
        spec = replace(spec, metadata=metadata or None)
        if request.snapshot is not None:  # its files from one of the owner's snapshots (core/pausing.py)
            pausing = self.manager.pausing
            model = await pausing.create_from_snapshot(
                self.owner, request.snapshot, request.name, spec, request.kernel_id
            )
        else:
            model = await self.manager.create(self.owner, request.name, spec, kernel_id=request.kernel_id)
        self.set_header("Location", url_path_join(self.base_url, api_path("sandboxes", model.id)))
        self.write_json(self.model_dict(model), status=201)


class SandboxHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, id_or_name: str) -> None:
        model = self.manager.get(self.owner, id_or_name)
        self.write_json(self.model_dict(model, await self.notebook_paths()))

    @web.authenticated
    @authorized
    async def delete(self, id_or_name: str) -> None:
        await self.manager.remove(self.owner, id_or_name)
        self.no_content()


class RestartHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, id_or_name: str) -> None:
        self.write_json(self.model_dict(await self.manager.restart(self.owner, id_or_name)))


class InterruptHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str) -> None:
        request = InterruptRequest.parse(self.json_body())
        await self.manager.interrupt(self.owner, id_or_name, request.context_id)
        self.no_content()


class StatsHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, id_or_name: str) -> None:
        self.write_json(await self.manager.stats(self.owner, id_or_name))


class LogsHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, id_or_name: str) -> None:
        self.write_json((await self.manager.logs(self.owner, id_or_name)).to_dict())


class ConfigHandler(SandboxAPIHandler):
    """The server's real defaults and limits, so that a create form can show them."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        config = self.manager.describe(max_upload_size=self.sandbox_app.max_body_size, owner=self.owner)
        self.write_json(config.to_dict())


# ---------------------------------------------------------------------------------------
# Contexts and execution: shared by the Jupyter API and the E2B routes (same operations,
# different authentication), so the verbs below only decorate and delegate.


class ContextsHandler(SandboxAPIHandler):
    async def list_contexts(self, id_or_name: str) -> None:
        self.write_json([c.to_dict() for c in await self.manager.list_contexts(self.owner, id_or_name)])

    async def create_context(self, id_or_name: str) -> None:
        request = ContextRequest.parse(self.json_body())
        context = await self.manager.create_context(self.owner, id_or_name, language=request.language, cwd=request.cwd)
        self.write_json(context.to_dict(), status=201)

    @web.authenticated
    @authorized
    async def get(self, id_or_name: str) -> None:
        await self.list_contexts(id_or_name)

    @web.authenticated
    @authorized
    async def post(self, id_or_name: str) -> None:
        await self.create_context(id_or_name)


class ContextHandler(SandboxAPIHandler):
    async def remove_context(self, id_or_name: str, context_id: str) -> None:
        await self.manager.remove_context(self.owner, id_or_name, context_id)
        self.no_content()

    @web.authenticated
    @authorized
    async def delete(self, id_or_name: str, context_id: str) -> None:
        await self.remove_context(id_or_name, context_id)


class ContextRestartHandler(SandboxAPIHandler):
    async def restart_context(self, id_or_name: str, context_id: str) -> None:
        context = await self.manager.restart_context(self.owner, id_or_name, context_id)
        self.write_json(context.to_dict())

    @web.authenticated
    @authorized
    async def post(self, id_or_name: str, context_id: str) -> None:
        await self.restart_context(id_or_name, context_id)


class InputHandler(SandboxAPIHandler):
    """The answer to an input() waiting in a context (announced by an ``input_request`` event)."""

    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str, context_id: str) -> None:
        reply = InputReply.parse(self.json_body())
        self.manager.answer_input(self.owner, id_or_name, context_id, value=reply.value, error=reply.error)
        self.no_content()


class ExecuteHandler(SandboxAPIHandler):
    """Streams one execution as NDJSON, each event sent as it happens.

    Executions in one context run one at a time: a second request waits its turn (it
    gets keepalive lines meanwhile) rather than a 409. A client that disconnects cancels
    its request: a queued one never runs, a running one interrupts the kernel.

    Lines are written without waiting: the ones written in one turn of the event loop go out
    in one flush at its end, and ``end_of_execution`` goes with the end of the response. Only
    a reader that falls behind by ``FLUSH_WAIT_BYTES`` makes the execution wait for the network.
    """

    FLUSH_WAIT_BYTES = 256 * 1024

    _task: asyncio.Task[Execution] | None = None
    _gone = False
    _flush_due = False
    _unflushed = 0  # bytes written since the last flush
    _in_flight = 0  # bytes of flushes not yet on the wire
    _keepalive_timer: asyncio.TimerHandle
    _keepalive_sent: asyncio.Future[None] | None = None

    async def stream_execute(self, id_or_name: str) -> None:
        request = ExecuteRequest.parse(self.json_body())
        if len(request.code.encode()) > self.sandbox_app.max_code_size:
            raise TooLarge(f"code is over {self.sandbox_app.max_code_size} bytes", field="code")
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # tell nginx-like proxies not to buffer the stream
        self._write_lock = asyncio.Lock()
        self._last_write = time.monotonic()
        self._task = asyncio.ensure_future(
            self.manager.execute(self.owner, id_or_name, request.code, on_event=self._send, **request.options())
        )
        self._keepalive_at(self.sandbox_app.keepalive_interval, self.sandbox_app.keepalive_interval)
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._gone:
                raise
            self.log.info("jupyter-sandbox: client left; execution in %s cancelled", id_or_name)
            return
        except SandboxError as e:
            if not self._headers_written:
                raise  # still time for a proper status
            # A keepalive already sent 200 (e.g. the sandbox was removed while this request
            # waited its turn): say why in the stream rather than cutting it short.
            self.log.warning("jupyter-sandbox: execution in %s failed mid-stream: %s", id_or_name, e)
            await self._send({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": ""})
            await self._send({"type": "end_of_execution"})
        finally:
            self._keepalive_timer.cancel()
            if self._keepalive_sent is not None:
                self._keepalive_sent.cancel()
        if not self._gone:
            await self.end_stream()

    async def end_stream(self) -> None:
        """The end of an execution's response (a route for another API's clients may end it their way)."""
        self.finish()

    async def _send(self, event: dict[str, Any]) -> None:
        if self._gone:
            return
        async with self._write_lock:
            line = json.dumps(event) + "\n"
            self.write(line)
            self._last_write = time.monotonic()
            self._unflushed += len(line)
            if event["type"] == "end_of_execution":
                return  # finish() sends it, with the end of the response
            if self._unflushed + self._in_flight >= self.FLUSH_WAIT_BYTES:
                await self._flush_now()  # a slow reader holds the execution back (memory stays flat)
            elif not self._flush_due:
                self._flush_due = True
                asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = False
        if not self._finished and not self._gone and self._unflushed:
            self._flush().add_done_callback(self._flushed)

    def _flush(self) -> asyncio.Future[None]:
        amount, self._unflushed = self._unflushed, 0
        self._in_flight += amount

        def sent(_: asyncio.Future[None]) -> None:
            self._in_flight -= amount

        flushed = self.flush()
        flushed.add_done_callback(sent)
        return flushed

    def _flushed(self, flushed: asyncio.Future[None]) -> None:
        error = None if flushed.cancelled() else flushed.exception()
        if isinstance(error, StreamClosedError):
            self._gone = True
        elif error is not None:
            self.log.error("jupyter-sandbox: writing the stream of an execution failed: %r", error)

    async def _flush_now(self) -> None:
        try:
            await self._flush()
        except StreamClosedError:
            self._gone = True

    def _keepalive_at(self, delay: float, interval: float) -> None:
        """A keepalive line once ``interval`` seconds pass without a line written. A timer, not a
        task: most executions end long before one is due, and a task per request costs."""
        self._keepalive_timer = asyncio.get_running_loop().call_later(delay, self._keepalive_due, interval)

    def _keepalive_due(self, interval: float) -> None:
        quiet = time.monotonic() - self._last_write
        if quiet < interval:
            self._keepalive_at(interval - quiet, interval)
            return
        if self._keepalive_sent is None or self._keepalive_sent.done():
            self._keepalive_sent = asyncio.ensure_future(self._send({"type": "keepalive"}))
        self._keepalive_at(interval, interval)

    def on_connection_close(self) -> None:
        self._gone = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().on_connection_close()

    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str) -> None:
        await self.stream_execute(id_or_name)


# ---------------------------------------------------------------------------------------
# Files


@web.stream_request_body
class FilesHandler(SandboxAPIHandler):
    """``GET files?path=`` lists a directory (JSON) or sends a file (bytes, streamed); ``type=dir``
    or ``type=file`` asks for one of the two only (a 400 for the other kind). ``PUT`` uploads: a
    body larger than the sandbox's disk is refused (413) from its Content-Length, before it is
    sent."""

    _chunks: list[bytes]
    _received = 0

    def _path(self, required: bool = True) -> str:
        path = self.get_query_argument("path", None)
        if required and not (path or "").strip():
            raise InvalidInput("the query parameter 'path' is required", field="path")
        return path or ""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        self._chunks = []
        if self.request.method != "PUT" or self.current_user is None:
            return  # the verb's own decorators answer 403
        limit = self.sandbox_app.max_body_size
        try:
            disk = self.manager.get(self.owner, self.path_kwargs["id_or_name"]).spec.disk
            limit = min(limit, disk)
        except SandboxError:
            pass  # an unknown sandbox is the verb's 404
        declared = int(self.request.headers.get("Content-Length") or 0)
        if declared > limit:
            raise TooLarge(f"an upload of {declared} bytes is over this sandbox's limit of {limit} bytes")
        if self.request.connection is not None:
            self.request.connection.set_max_body_size(limit)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        self._chunks.append(chunk)

    @web.authenticated
    @authorized
    async def get(self, id_or_name: str) -> None:
        path = self._path(required=False)
        kind = self.get_query_argument("type", None)
        if kind not in (None, "dir", "file"):
            raise InvalidInput("type must be 'dir' or 'file'", field="type")
        depth = self.get_query_argument("depth", None)
        if depth is not None:  # a tree of entries with their details (E2B's list with depth)
            if not depth.isdigit() or int(depth) < 1:
                raise InvalidInput("depth must be a whole number of levels, 1 or more", field="depth")
            sandbox = self.manager.registry.use(self.owner, id_or_name)
            self.write_json(await self.manager.files.tree(sandbox, path or ".", int(depth)))
            return
        if kind != "file":
            try:
                self.write_json(await self.manager.list_files(self.owner, id_or_name, path))
                return
            except NotADirectory:
                if kind == "dir":
                    raise
        chunks = self.manager.stream_file(self.owner, id_or_name, path)
        try:
            first = await anext(chunks, b"")  # errors (404, not a file) come before any byte: a proper status
            self.set_header("Content-Type", "application/octet-stream")
            self.write(first)
            async for chunk in chunks:
                self.write(chunk)
                await self.flush()  # memory stays flat: one chunk at a time
        finally:
            await chunks.aclose()  # a client that left stops the transfer in the sandbox too
        self.finish(set_content_type="application/octet-stream")

    @web.authenticated
    @authorized
    async def put(self, id_or_name: str) -> None:
        path = self._path()
        await self.manager.write_file(self.owner, id_or_name, path, b"".join(self._chunks))
        self.no_content()

    @web.authenticated
    @authorized
    async def delete(self, id_or_name: str) -> None:
        await self.manager.remove_file(self.owner, id_or_name, self._path())
        self.no_content()


# ---------------------------------------------------------------------------------------
# Routes: templates ({name} is one path segment) -> handlers. openapi.yaml describes the
# same templates; tests/test_handlers.py checks that the two agree.

ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("config"), ConfigHandler),
    (api_path("sandboxes"), SandboxesHandler),
    (api_path("sandboxes/{id_or_name}"), SandboxHandler),
    (api_path("sandboxes/{id_or_name}/restart"), RestartHandler),
    (api_path("sandboxes/{id_or_name}/interrupt"), InterruptHandler),
    (api_path("sandboxes/{id_or_name}/stats"), StatsHandler),
    (api_path("sandboxes/{id_or_name}/logs"), LogsHandler),
    (api_path("sandboxes/{id_or_name}/contexts"), ContextsHandler),
    (api_path("sandboxes/{id_or_name}/contexts/{context_id}"), ContextHandler),
    (api_path("sandboxes/{id_or_name}/contexts/{context_id}/restart"), ContextRestartHandler),
    (api_path("sandboxes/{id_or_name}/contexts/{context_id}/input"), InputHandler),
    (api_path("sandboxes/{id_or_name}/execute"), ExecuteHandler),
    (api_path("sandboxes/{id_or_name}/files"), FilesHandler),
]


def route_pattern(template: str) -> str:
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
