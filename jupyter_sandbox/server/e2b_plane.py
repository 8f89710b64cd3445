"""The data plane E2B's SDKs reach every sandbox through: ``{base_url}sandbox/e2b/plane`` (their
``E2B_SANDBOX_URL``).

The SDK sends each request of a sandbox to that one URL and says which sandbox and which of its
services it means in headers: ``E2b-Sandbox-Id`` and ``E2b-Sandbox-Port`` (49983: envd, the
process and filesystem services and ``/files``; 49999: the code interpreter's ``/execute`` and
``/contexts``). A path belongs to one port: the routing table below maps (port, path) to the
handler, and a handler answers only for its own port.

Authentication, in this order (an explicit alternative to jupyter_server's, documented in
docs/e2b.md):
- the sandbox's access token, in ``X-Access-Token`` or ``E2B-Traffic-Access-Token``: the
  per-sandbox secret the lifecycle API gave its owner at create (``envdAccessToken``);
- an API key of the owner in ``X-API-KEY``: one they minted (core/api_keys.py), or a token the
  server's own authentication takes (its Jupyter token; a Hub API token behind JupyterHub);
- the owner's own Jupyter login (a token header; a cookie needs the XSRF check as everywhere).
No credentials: 401. An unknown sandbox, another user's, or a wrong token: 404. A sandbox whose
container is gone: 502.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection

from ..errors import InvalidInput, NotFound, SandboxGone, Unauthorized
from .e2b import E2B
from .e2b_code import e2b_event
from .handlers import (
    ContextHandler,
    ContextRestartHandler,
    ContextsHandler,
    ExecuteHandler,
    SandboxAPIHandler,
    owner_of,
)

if TYPE_CHECKING:
    from ..core.api_keys import ApiKeys

PLANE = f"{E2B}/plane"
ENVD_PORT = 49983
CODE_INTERPRETER_PORT = 49999
# What the lifecycle API answers as every sandbox's envdVersion. The SDK picks its wire formats
# by it (e2b/envd/versions.py): this is the one version the envd routes here speak.
ENVD_VERSION = "0.5.7"
SANDBOX_ID_HEADER = "E2b-Sandbox-Id"
SANDBOX_PORT_HEADER = "E2b-Sandbox-Port"
ACCESS_TOKEN_HEADERS = ("X-Access-Token", "E2B-Traffic-Access-Token")
API_KEY_HEADER = "X-API-KEY"
# tornado setting: the ApiKeys of the server (None: no minted keys, the server token only)
API_KEYS_SETTING = "sandbox_api_keys"

Handler = TypeVar("Handler", bound=type["E2BPlaneMixin"])
# path template (under PLANE) -> port -> handler
_TABLE: dict[str, dict[int, type[E2BPlaneMixin]]] = {}


def plane_path(*parts: str) -> str:
    return url_path_join("/", PLANE, *parts)


def register(port: int, template: str) -> Callable[[Handler], Handler]:
    """Class decorator: ``handler`` serves ``template`` (a path under the plane, ``{name}`` for
    one segment) for ``port``. A path serves one port: tornado routes by path alone."""

    def add(handler: Handler) -> Handler:
        ports = _TABLE.setdefault(template, {})
        if ports and port not in ports:
            raise ValueError(f"E2B plane path {template!r} is already served for port {next(iter(ports))}")
        ports[port] = handler
        handler.e2b_port = port
        return handler

    return add


def routes() -> list[tuple[str, type[web.RequestHandler]]]:
    """The plane's tornado routes, from the table (every module that registers is imported by then)."""
    return [(plane_path(template), handler) for template, ports in _TABLE.items() for handler in ports.values()]


def take_api_key(handler: JupyterHandler) -> tuple[str | None, str | None]:
    """Before jupyter_server authenticates ``handler``'s request: its ``X-API-KEY`` and the user who
    minted it. A key minted by nobody here goes to the server's own authentication as a token (the
    server's Jupyter token, a Hub API token behind JupyterHub), which then names its user."""
    key = handler.request.headers.get(API_KEY_HEADER)
    if not key:
        return None, None
    keys: ApiKeys | None = handler.settings.get(API_KEYS_SETTING)
    owner = keys.owner_of(key) if keys is not None else None
    if owner is None and "Authorization" not in handler.request.headers:
        handler.request.headers["Authorization"] = f"token {key}"
    return key, owner


def cookie_credentials(handler: JupyterHandler) -> bool:
    """Whether the request may be authenticated by a cookie alone, which a cross-site page can make a
    browser send (so the XSRF check applies). A key in a header is a credential no such page can
    send; without any cookie, there is nothing to forge and prepare() answers 401 itself."""
    return bool(handler.request.headers.get("Cookie")) and not handler.request.headers.get(API_KEY_HEADER)


def request_owner(handler: JupyterHandler, key: str | None, key_owner: str | None) -> str:
    """The user an authenticated request acts as (after ``take_api_key`` and jupyter_server's auth);
    Unauthorized (401) without credentials, or with a key that belongs to nobody."""
    if key_owner is not None:
        return key_owner
    if handler.current_user is not None:
        return owner_of(handler)
    if key:
        raise Unauthorized("invalid API key: not a key minted here (or it was revoked), nor a token of this server")
    raise Unauthorized(
        f"no credentials: send an API key ({API_KEY_HEADER}, the SDK's E2B_API_KEY) or, on the data plane, the "
        f"sandbox's access token ({ACCESS_TOKEN_HEADERS[0]})"
    )


class E2BPlaneMixin(SandboxAPIHandler):
    """Base of every data-plane handler: finds the sandbox from the headers, authenticates, and
    acts as the sandbox's owner (``self.owner``, ``self.sandbox_id``) in the verbs."""

    e2b_port: ClassVar[int] = 0
    sandbox_id = ""
    _plane_owner: str | None = None

    def access_token(self) -> str:
        for header in ACCESS_TOKEN_HEADERS:
            value = self.request.headers.get(header)
            if value:
                return value
        return ""

    def check_xsrf_cookie(self) -> None:
        if self.access_token() or not cookie_credentials(self):
            return None
        return super().check_xsrf_cookie()

    async def prepare(self) -> None:  # type: ignore[override]
        key, key_owner = take_api_key(self)
        await super().prepare()
        headers = self.request.headers
        sandbox_id = headers.get(SANDBOX_ID_HEADER, "").strip()
        port = headers.get(SANDBOX_PORT_HEADER, "").strip()
        if not sandbox_id:
            raise InvalidInput(f"the {SANDBOX_ID_HEADER} header is missing: which sandbox is this for?")
        if port != str(self.e2b_port):
            raise NotFound(
                f"nothing answers {self.request.path.rsplit('/plane', 1)[-1]!r} on port {port or '(none)'} of a "
                f"sandbox here (it is served on port {self.e2b_port})"
            )
        # No E2B_REQUIRES_LOGIN here (the Hub service sets it for the secret *URLs* of server/e2b.py):
        # the access token travels in a header, never in a URL, so it leaks no more than an API key.
        try:
            owner = self._authenticate(sandbox_id, key, key_owner)
            model = self.manager.get(owner, sandbox_id)  # 404: unknown, or not this owner's
        except NotFound:
            # As E2B's proxy does (its SDK reads a 502 as "not running"), for the one who may know
            token = self.access_token()
            caller = "" if token else request_owner(self, key, key_owner)
            if self.manager.removed_lately(sandbox_id, owner=caller, secret=token):
                raise SandboxGone(f"sandbox {sandbox_id} was removed (killed, or past its end time)") from None
            raise
        if model.status == "exited":
            raise SandboxGone(f"sandbox {sandbox_id} has ended: {model.status_reason or 'its container is gone'}")
        self._plane_owner, self.sandbox_id = owner, model.id

    def _authenticate(self, sandbox_id: str, key: str | None, key_owner: str | None) -> str:
        """Whose sandbox the request may act on (see the module's docstring)."""
        token = self.access_token()
        if token:
            return self.manager.owner_by_e2b_secret(sandbox_id, token)
        return request_owner(self, key, key_owner)

    @property
    def owner(self) -> str:
        return self._plane_owner or ""


# ---------------------------------------------------------------------------------------
# The code interpreter (port 49999): the same operations as the Jupyter API's, reused.


@register(CODE_INTERPRETER_PORT, "contexts")
class PlaneContextsHandler(E2BPlaneMixin, ContextsHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        await self.list_contexts(self.sandbox_id)

    @allow_unauthenticated
    async def post(self) -> None:
        await self.create_context(self.sandbox_id)


@register(CODE_INTERPRETER_PORT, "contexts/{context_id}")
class PlaneContextHandler(E2BPlaneMixin, ContextHandler):
    @allow_unauthenticated
    async def delete(self, context_id: str) -> None:
        await self.remove_context(self.sandbox_id, context_id)


@register(CODE_INTERPRETER_PORT, "contexts/{context_id}/restart")
class PlaneContextRestartHandler(E2BPlaneMixin, ContextRestartHandler):
    @allow_unauthenticated
    async def post(self, context_id: str) -> None:
        await self.restart_context(self.sandbox_id, context_id)


@register(CODE_INTERPRETER_PORT, "execute")
class PlaneExecuteHandler(E2BPlaneMixin, ExecuteHandler):
    async def _send(self, event: dict[str, Any]) -> None:
        await super()._send(e2b_event(event))  # results as E2B gives them (server/e2b_code.py)

    async def end_stream(self) -> None:
        try:
            alive = self.manager.get(self.owner, self.sandbox_id).status != "exited"
        except NotFound:
            alive = False
        connection = self.request.connection
        if alive or not isinstance(connection, HTTP1Connection):  # (tornado serves HTTP/1.1 only)
            return await super().end_stream()
        # Killed while the code ran: E2B's proxy cuts such a response, and its SDK, finding the
        # sandbox no longer running (a 502 on its health route), says it was killed.
        self.log.info("jupyter-sandbox: sandbox %s was removed during an execution: its stream is cut", self.sandbox_id)
        await self.flush()
        connection.stream.close()

    @allow_unauthenticated
    async def post(self) -> None:
        await self.stream_execute(self.sandbox_id)


# ---------------------------------------------------------------------------------------
# envd (port 49983): its health probe, which the SDK's is_running() asks. prepare() has found the
# sandbox running by then (404 gone, 502 its container ended).


@register(ENVD_PORT, "health")
class PlaneHealthHandler(E2BPlaneMixin):
    @allow_unauthenticated
    async def get(self) -> None:
        self.no_content()
