"""Thin REST handlers. Errors go through one mapping: SandboxError.status -> HTTP."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import secrets
import time
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.iostream import StreamClosedError

from ..errors import InvalidInput, NotFound, SandboxError, TooLarge

AUTH_RESOURCE = "sandboxes"
API = "sandbox/api"
E2B = "sandbox/e2b"
SECRETS = "sandbox_e2b_secrets"  # settings key: sandbox id -> its E2B URL secret
SHARED_TOKEN_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)
SHARED_OWNER = "owner"


class SandboxAPIHandler(APIHandler):
    """Base: owner from jupyter_server's identity, JSON bodies, project errors -> HTTP."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self):
        return self.settings["sandbox_manager"]

    @property
    def sandbox_app(self):
        return self.settings["sandbox_app"]

    @property
    def owner(self) -> str:
        if type(self.identity_provider) in SHARED_TOKEN_PROVIDERS:
            # jupyter_server's built-in providers cannot tell token holders apart: each
            # cookie-less token request gets a new random "anonymous" username. Everyone
            # holding this server's token or password is its one owner.
            return SHARED_OWNER
        return self.current_user.username

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (400 naming the problem otherwise)."""
        body = self.request.body or b""
        if len(body) > self.sandbox_app.max_body_size:
            raise TooLarge(f"request body over {self.sandbox_app.max_body_size} bytes")
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInput(f"request body is not valid JSON: {e}", field="body") from e
        if not isinstance(data, dict):
            raise InvalidInput("request body must be a JSON object", field="body")
        return data

    def model_dict(self, model) -> dict[str, Any]:
        """A SandboxModel as the API shows it, with the URL to give E2B's SDK."""
        data = model.to_dict()
        # Unless configured, the host the caller used reaches this server (a proxy's public host included).
        origin = self.sandbox_app.public_url.rstrip("/") or f"{self.request.protocol}://{self.request.host}"
        data["e2b_url"] = origin + url_path_join(self.base_url, e2b_path(model.id, e2b_secret(self.settings, model.id)))
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SandboxError):
            level = self.log.warning if e.status < 500 else self.log.error
            level("jupyter-sandbox: %s %s -> %s %s", self.request.method, self.request.path, e.status, e.message)
            if self._finished:
                return
            if self._headers_written:
                # Mid-stream (NDJSON): the status is already sent; say it as a line.
                self.write(json.dumps({"type": "error", "name": type(e).__name__, "value": e.message, "traceback": ""}) + "\n")
                self.finish()
                return
            self.clear()
            self.set_status(e.status, e.reason)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(e.to_dict()))
            return
        super()._handle_request_exception(e)


def api_path(*parts: str) -> str:
    return url_path_join("/", API, *parts)


def e2b_path(*parts: str) -> str:
    return url_path_join("/", E2B, *parts)


def _no_content(handler: web.RequestHandler) -> None:
    handler.set_status(204)
    handler.finish()


def _fields(body: dict[str, Any], allowed: tuple[str, ...], strings: tuple[str, ...] = ()) -> dict[str, Any]:
    """Refuse unknown fields (typos such as ``contextId`` would otherwise be ignored silently)."""
    for name in body:
        if name not in allowed:
            raise InvalidInput(f"unknown field {name!r}; expected some of {', '.join(allowed)}", field=name)
    for name in strings:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise InvalidInput(f"{name} must be a string", field=name)
    return body


# ---------------------------------------------------------------------------------------
# Sandboxes


class SandboxesHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        self.write_json([self.model_dict(m) for m in self.manager.list(self.owner)])

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        name = body.pop("name", None)
        kernel_id = body.pop("kernel_id", None)
        if kernel_id is not None and (not isinstance(kernel_id, str) or kernel_id not in self.kernel_manager):
            raise InvalidInput(
                f"kernel_id {kernel_id!r} is not a running kernel of this server; a sandbox can only be "
                "tied to this server's own notebook kernels", field="kernel_id",
            )
        model = await self.manager.create(self.owner, name, body, kernel_id=kernel_id)
        e2b_secret(self.settings, model.id)  # made now, so the URL in this answer stays valid
        self.set_header("Location", url_path_join(self.base_url, api_path("sandboxes", model.id)))
        self.write_json(self.model_dict(model), status=201)


class SandboxHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, sandbox_id):
        self.write_json(self.model_dict(self.manager.get(self.owner, sandbox_id)))

    @web.authenticated
    @authorized
    async def delete(self, sandbox_id):
        model = self.manager.get(self.owner, sandbox_id)
        await self.manager.remove(self.owner, model.id)
        self.settings.get(SECRETS, {}).pop(model.id, None)
        _no_content(self)


class RestartHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, sandbox_id):
        self.write_json(self.model_dict(await self.manager.restart(self.owner, sandbox_id)))


class InterruptHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, sandbox_id):
        body = _fields(self.json_body(), ("context_id",), strings=("context_id",))
        await self.manager.interrupt(self.owner, sandbox_id, body.get("context_id"))
        _no_content(self)


class StatsHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, sandbox_id):
        self.write_json(await self.manager.stats(self.owner, sandbox_id))


# ---------------------------------------------------------------------------------------
# Contexts and execution: shared by the Jupyter API and the E2B routes (same operations,
# different authentication), so the verbs below only decorate and delegate.


class ContextsHandler(SandboxAPIHandler):
    async def list_contexts(self, sandbox_id):
        self.write_json([c.to_dict() for c in self.manager.list_contexts(self.owner, sandbox_id)])

    async def create_context(self, sandbox_id):
        body = _fields(self.json_body(), ("language", "cwd"), strings=("language", "cwd"))
        context = await self.manager.create_context(self.owner, sandbox_id, language=body.get("language"), cwd=body.get("cwd"))
        self.write_json(context.to_dict(), status=201)

    @web.authenticated
    @authorized
    async def get(self, sandbox_id):
        await self.list_contexts(sandbox_id)

    @web.authenticated
    @authorized
    async def post(self, sandbox_id):
        await self.create_context(sandbox_id)


class ContextHandler(SandboxAPIHandler):
    async def remove_context(self, sandbox_id, context_id):
        await self.manager.remove_context(self.owner, sandbox_id, context_id)
        _no_content(self)

    @web.authenticated
    @authorized
    async def delete(self, sandbox_id, context_id):
        await self.remove_context(sandbox_id, context_id)


class ContextRestartHandler(SandboxAPIHandler):
    async def restart_context(self, sandbox_id, context_id):
        context = await self.manager.restart_context(self.owner, sandbox_id, context_id)
        self.write_json(context.to_dict())

    @web.authenticated
    @authorized
    async def post(self, sandbox_id, context_id):
        await self.restart_context(sandbox_id, context_id)


class ExecuteHandler(SandboxAPIHandler):
    """Streams one execution as NDJSON, each event flushed as it happens.

    Executions in one context run one at a time: a second request waits its turn (it
    gets keepalive lines meanwhile) rather than a 409. A client that disconnects cancels
    its request: a queued one never runs, a running one interrupts the kernel.
    """

    _task: asyncio.Task | None = None
    _gone = False

    async def stream_execute(self, sandbox_id):
        body = _fields(self.json_body(), EXECUTE_FIELDS, strings=("code", "context_id", "language"))
        code = body.get("code")
        if not isinstance(code, str):
            raise InvalidInput("code is required and must be a string", field="code")
        if len(code.encode()) > self.sandbox_app.max_code_size:
            raise TooLarge(f"code is over {self.sandbox_app.max_code_size} bytes", field="code")
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # tell nginx-like proxies not to buffer the stream
        self._write_lock = asyncio.Lock()
        self._last_write = time.monotonic()
        self._task = asyncio.ensure_future(self.manager.execute(
            self.owner, sandbox_id, code, context_id=body.get("context_id"), language=body.get("language"),
            env_vars=body.get("env_vars"), timeout=body.get("timeout"), on_event=self._send,
        ))
        keepalive = asyncio.ensure_future(self._keepalive(self.sandbox_app.keepalive_interval))
        try:
            await self._task
        except asyncio.CancelledError:
            if not self._gone:
                raise
            self.log.info("jupyter-sandbox: client left; execution in %s cancelled", sandbox_id)
            return
        except SandboxError as e:
            if not self._headers_written:
                raise  # still time for a proper status
            # A keepalive already sent 200 (e.g. the sandbox was removed while this request
            # waited its turn): say why in the stream rather than cutting it short.
            self.log.warning("jupyter-sandbox: execution in %s failed mid-stream: %s", sandbox_id, e)
            await self._send({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": ""})
            await self._send({"type": "end_of_execution"})
        finally:
            keepalive.cancel()
        if not self._gone:
            self.finish()

    async def _send(self, event: dict[str, Any]) -> None:
        if self._gone:
            return
        async with self._write_lock:
            self.write(json.dumps(event) + "\n")
            self._last_write = time.monotonic()
            try:
                await self.flush()
            except StreamClosedError:
                self._gone = True

    async def _keepalive(self, interval: float) -> None:
        while True:
            await asyncio.sleep(max(0.0, self._last_write + interval - time.monotonic()))
            if time.monotonic() - self._last_write >= interval:
                await self._send({"type": "keepalive"})

    def on_connection_close(self) -> None:
        self._gone = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().on_connection_close()

    @web.authenticated
    @authorized("execute")
    async def post(self, sandbox_id):
        await self.stream_execute(sandbox_id)


EXECUTE_FIELDS = ("code", "context_id", "language", "env_vars", "timeout")


# ---------------------------------------------------------------------------------------
# Files


class FilesHandler(SandboxAPIHandler):
    def _path(self, required: bool = True) -> str:
        path = self.get_query_argument("path", None)
        if required and not (path or "").strip():
            raise InvalidInput("the query parameter 'path' is required", field="path")
        return path or ""

    @web.authenticated
    @authorized
    async def get(self, sandbox_id):
        path = self._path(required=False)
        try:
            entries = await self.manager.list_files(self.owner, sandbox_id, path)
        except InvalidInput as e:
            # Backends say "not a directory" (their contract) for a file: send its bytes.
            if not e.message.startswith("not a directory"):
                raise
            data = await self.manager.read_file(self.owner, sandbox_id, path)
            self.finish(data, set_content_type="application/octet-stream")
            return
        self.write_json(entries)

    @web.authenticated
    @authorized
    async def put(self, sandbox_id):
        path = self._path()
        if len(self.request.body) > self.sandbox_app.max_body_size:
            raise TooLarge(f"request body over {self.sandbox_app.max_body_size} bytes")
        await self.manager.write_file(self.owner, sandbox_id, path, self.request.body)
        _no_content(self)

    @web.authenticated
    @authorized
    async def delete(self, sandbox_id):
        await self.manager.remove_file(self.owner, sandbox_id, self._path())
        _no_content(self)


# ---------------------------------------------------------------------------------------
# E2B's SDK: it calls {E2B_SANDBOX_URL}/execute and /contexts without custom headers, so it
# cannot carry the Jupyter token. These routes authenticate by a per-sandbox secret in the
# URL path instead (made when the sandbox is created, valid for that sandbox only, shown
# only to its owner as ``e2b_url``). A wrong secret answers 404, like an unknown sandbox.


def e2b_secret(settings: dict[str, Any], sandbox_id: str) -> str:
    store = settings.setdefault(SECRETS, {})
    if sandbox_id not in store:
        store[sandbox_id] = secrets.token_urlsafe(32)
    return store[sandbox_id]


class E2BMixin:
    """Authenticates by the path's secret; acts as the sandbox's owner."""

    _e2b_owner: str | None = None

    def check_xsrf_cookie(self) -> None:
        # Cookies grant nothing here: the credential is the secret in the path, which a
        # cross-site page cannot know. The SDK sends no XSRF token.
        return None

    async def prepare(self):
        await super().prepare()
        sandbox_id, given = self.path_kwargs["sandbox_id"], self.path_kwargs["secret"]
        expected = self.settings.get(SECRETS, {}).get(sandbox_id, "")
        model = next((m for m in self.manager.list() if m.id == sandbox_id), None)
        if model is None or not hmac.compare_digest(expected.encode(), given.encode()):
            raise NotFound(f"no sandbox {sandbox_id!r} (or a wrong secret in the URL)")
        self._e2b_owner = model.owner

    @property
    def owner(self) -> str:
        return self._e2b_owner


class E2BContextsHandler(E2BMixin, ContextsHandler):
    @allow_unauthenticated
    async def get(self, sandbox_id, secret):
        await self.list_contexts(sandbox_id)

    @allow_unauthenticated
    async def post(self, sandbox_id, secret):
        await self.create_context(sandbox_id)


class E2BContextHandler(E2BMixin, ContextHandler):
    @allow_unauthenticated
    async def delete(self, sandbox_id, secret, context_id):
        await self.remove_context(sandbox_id, context_id)


class E2BContextRestartHandler(E2BMixin, ContextRestartHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id, secret, context_id):
        await self.restart_context(sandbox_id, context_id)


class E2BExecuteHandler(E2BMixin, ExecuteHandler):
    @allow_unauthenticated
    async def post(self, sandbox_id, secret):
        await self.stream_execute(sandbox_id)


# ---------------------------------------------------------------------------------------
# Routes: templates ({name} is one path segment) -> handlers. openapi.yaml describes the
# same templates; tests/test_handlers.py checks that the two agree.

ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("sandboxes"), SandboxesHandler),
    (api_path("sandboxes/{sandbox_id}"), SandboxHandler),
    (api_path("sandboxes/{sandbox_id}/restart"), RestartHandler),
    (api_path("sandboxes/{sandbox_id}/interrupt"), InterruptHandler),
    (api_path("sandboxes/{sandbox_id}/stats"), StatsHandler),
    (api_path("sandboxes/{sandbox_id}/contexts"), ContextsHandler),
    (api_path("sandboxes/{sandbox_id}/contexts/{context_id}"), ContextHandler),
    (api_path("sandboxes/{sandbox_id}/contexts/{context_id}/restart"), ContextRestartHandler),
    (api_path("sandboxes/{sandbox_id}/execute"), ExecuteHandler),
    (api_path("sandboxes/{sandbox_id}/files"), FilesHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts"), E2BContextsHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}"), E2BContextHandler),
    (e2b_path("{sandbox_id}/{secret}/contexts/{context_id}/restart"), E2BContextRestartHandler),
    (e2b_path("{sandbox_id}/{secret}/execute"), E2BExecuteHandler),
]


def route_pattern(template: str) -> str:
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)


default_handlers: list[tuple[str, type[web.RequestHandler]]] = [(route_pattern(t), h) for t, h in ROUTES]
