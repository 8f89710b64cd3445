"""Hub mode: a single-user server that reaches sandboxes only through the JupyterHub sandbox service.

The service (``python -m jupyter_sandbox.service``) alone holds the container engine. A server in
Hub mode builds no manager and no backend: it serves the extension's own routes by forwarding
each request to the service under the same relative path (``sandbox/api/...``), with the
server's Hub token in place of the caller's credentials, so the panel, magics, client and CLI
reach the user's own server exactly as without a Hub.

Each request is first authenticated and authorized by this server (``@authorized``, as on every
route), and a request of anyone but the Hub user this server belongs to (JupyterHub's sharing)
is refused: the service would count a guest's sandboxes as the owner's.

Bodies stream both ways: an NDJSON execution reaches the caller line by line as the service
sends it, a download chunk by chunk (the next chunk is read once the caller took the last),
an upload as it arrives. A caller that leaves closes the request to the service at its next
chunk (an execution's keepalive lines bound the wait), and the service cancels the work as for
any client that leaves.

Two things only this server can do, because only it sees its notebook kernels: tie a sandbox to
one of them (``POST sandboxes`` with ``kernel_id``, checked here and removed through the service
when the kernel shuts down), and tell the events socket that such a kernel was interrupted.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from functools import cached_property
from logging import Logger
from typing import Any
from urllib.parse import urlparse

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.auth.utils import HTTP_METHOD_TO_AUTH_ACTION
from jupyter_server.utils import ensure_async, url_path_join
from tornado import httputil, web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.iostream import StreamClosedError

from ..errors import Forbidden, InvalidInput, ServiceUnreachable
from . import admin, command_routes, handlers, keys, oneshot, pause_routes, volume_routes
from .events import EventsHandler
from .handlers import SandboxAPIHandler, api_path, authorized_to, owner_of

SERVICE_URL_ENV = "JUPYTER_SANDBOX_SERVICE_URL"
SERVER_HEADER = "X-Jupyter-Sandbox-Server"

# What passes to the service: the representation of the body and what the caller accepts. Never
# the caller's credentials (Authorization, cookies: the server's token replaces them), its Origin
# or Host (the service checks them against its own), nor hop-by-hop headers.
REQUEST_HEADERS = ("Accept", "Content-Type", "Content-Length", "Content-Encoding")
# What comes back: the answer's representation and its meaning to the caller; not the service's
# cookies, security policy or hop-by-hop headers (this server sets its own).
RESPONSE_HEADERS = ("Content-Type", "Content-Encoding", "Content-Disposition", "Cache-Control", "X-Accel-Buffering")
BODY_METHODS = ("POST", "PUT", "PATCH")
CONNECT_TIMEOUT = 10.0
# An execution streams as long as it runs, and the service sends keepalive lines meanwhile.
REQUEST_TIMEOUT = 7 * 24 * 3600.0
# Requests to the service at once (a streamed execution or download is one, however long).
MAX_STREAMS = 512
# Only the memory of one chunk is held per stream: the size limit is the service's to set.
MAX_ANSWER_SIZE = 1 << 50


class ServiceLink:
    """How this server reaches the sandbox service: its URL, the token, who this server is."""

    def __init__(self, url: str, token: str, *, server_name: str = "", hub_user: str = "") -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"SandboxApp.service_url must be an http(s) URL of the sandbox service, not {url!r}")
        if not token:
            raise ValueError(
                f"Hub mode (service at {url}) needs a token: set c.SandboxApp.service_token or JUPYTERHUB_API_TOKEN"
            )
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.server_name = server_name  # JUPYTERHUB_SERVER_NAME: '' for the user's default server
        self.hub_user = hub_user  # JUPYTERHUB_USER: whose server this is ('' outside a Hub)
        # notebook kernel id -> the ids of the sandboxes tied to it (only this server sees its kernels)
        self.kernel_sandboxes: dict[str, set[str]] = {}

    @classmethod
    def from_environment(cls, url: str, token: str) -> ServiceLink:
        return cls(
            url,
            token,
            server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            hub_user=os.environ.get("JUPYTERHUB_USER", ""),
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}", SERVER_HEADER: self.server_name}

    def target(self, relative: str, query: str = "") -> str:
        """The service's URL of a path relative to a base URL (``sandbox/api/...``)."""
        return self.url + relative.lstrip("/") + (f"?{query}" if query else "")

    def websocket_target(self, relative: str) -> str:
        return "ws" + self.target(relative).removeprefix("http")

    def local_location(self, location: str, base_url: str) -> str:
        """A Location of the service's, as the same resource under this server's base URL."""
        for prefix in (self.url, urlparse(self.url).path):
            if location.startswith(prefix):
                return url_path_join(base_url, location[len(prefix) :])
        return location

    def refuses(self, owner: str) -> bool:
        """Whether a request of ``owner`` is a guest's (JupyterHub sharing): not the Hub user of this server.
        (handlers.SHARED_OWNER, the holder of this server's own token or password, is its owner.)"""
        return bool(self.hub_user) and owner not in (self.hub_user, handlers.SHARED_OWNER)

    def guest_error(self) -> Forbidden:
        return Forbidden(
            f"sandboxes are made through your own server: this server is {self.hub_user}'s, and its sandboxes "
            "would count as theirs"
        )

    async def remove_kernel_sandboxes(self, kernel_id: str, log: Logger) -> None:
        """The sandboxes tied to a notebook kernel of this server that shut down, removed in the
        service (which cannot see this server's kernels)."""
        for sandbox_id in sorted(self.kernel_sandboxes.pop(kernel_id, set())):
            request = HTTPRequest(
                self.target(api_path("sandboxes", sandbox_id)),
                method="DELETE",
                headers=self.headers(),
                connect_timeout=CONNECT_TIMEOUT,
                request_timeout=120,
            )
            try:
                answer = await self.client.fetch(request, raise_error=False)
            except (OSError, HTTPClientError, StreamClosedError) as e:
                log.error(
                    "jupyter-sandbox: removing sandbox %s of kernel %s at %s failed: %s",
                    sandbox_id,
                    kernel_id,
                    self.url,
                    e,
                )
                continue
            if answer.code not in (204, 404):  # 404: its user removed it first
                log.error("jupyter-sandbox: the service answered %s to removing sandbox %s", answer.code, sandbox_id)

    @cached_property
    def client(self) -> AsyncHTTPClient:
        # made on first use: an AsyncHTTPClient belongs to the event loop it was made on
        return AsyncHTTPClient(force_instance=True, max_clients=MAX_STREAMS, max_body_size=MAX_ANSWER_SIZE)


class _ClientLeft(Exception):
    """The caller went away while its request body was being forwarded: the upstream request stops."""


_END, _ABORT = object(), object()


@web.stream_request_body
class ServiceProxyHandler(SandboxAPIHandler):
    """One route of the extension, forwarded to the service. A subclass per route (``proxy_routes``)
    offers the same methods as the route's own handler."""

    auth_action: str | None = None  # None: jupyter_server's action for the HTTP method

    _body: asyncio.Queue[object] | None = None  # chunks of the caller's body for the service
    _answer: asyncio.Future[HTTPResponse] | None = None
    _status: httputil.ResponseStartLine | None = None
    _service_headers: httputil.HTTPHeaders | None = None
    _gone = False
    _whole_answer: list[bytes] | None = None  # set by verbs that read the answer whole (rewrite_answer)
    streams_body = True  # False: the verb reads the caller's body whole (a small JSON it looks into)
    _whole_body: bytearray

    @property
    def service(self) -> ServiceLink:
        link: ServiceLink = self.settings["sandbox_service"]
        return link

    async def prepare(self) -> None:  # type: ignore[override]  # as FilesHandler's: jupyter_server's is async
        await super().prepare()
        # A body goes to the service as it arrives: the upstream request starts now, once the
        # caller is known to be allowed it (the verb's decorators, which run only after the whole
        # body, answer the others).
        self._whole_body = bytearray()
        if not self.streams_body:
            return
        if self._finished or self.request.method not in BODY_METHODS or not await self._may_forward():
            return
        self._body = asyncio.Queue(maxsize=4)
        self._answer = self._forward(body_producer=self._produce_body)
        self._answer.add_done_callback(self._stop_taking_body)

    async def _may_forward(self) -> bool:
        user = self.current_user
        if not user or self.service.refuses(owner_of(self)):
            return False
        assert self.request.method is not None
        action = self.auth_action or HTTP_METHOD_TO_AUTH_ACTION[self.request.method]
        allowed: bool = await ensure_async(self.authorizer.is_authorized(self, user, action, self.auth_resource))
        return allowed

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if not self.streams_body:
            if len(self._whole_body) <= self.sandbox_app.max_body_size:  # beyond: json_body's 413
                self._whole_body += chunk
            return None
        if self._body is None:
            return None  # refused: the verb answers
        return self._body.put(chunk)  # waits while the service takes the chunks before

    async def _produce_body(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        assert self._body is not None
        while (chunk := await self._body.get()) is not _END:
            if chunk is _ABORT:
                raise _ClientLeft("the caller left before its request body was complete")
            assert isinstance(chunk, bytes)
            await write(chunk)

    def _stop_taking_body(self, _: object) -> None:
        """The service answered before the body ended (an error): the rest of it goes nowhere."""
        body, self._body = self._body, None
        while body is not None and not body.empty():
            body.get_nowait()

    def _forward(self, **body: Any) -> asyncio.Future[HTTPResponse]:
        relative = self.request.path.removeprefix(self.base_url.rstrip("/"))
        headers = {name: value for name in REQUEST_HEADERS if (value := self.request.headers.get(name)) is not None}
        request = HTTPRequest(
            self.service.target(relative, self.request.query),
            method=self.request.method or "GET",
            headers={**headers, **self.service.headers()},
            header_callback=self._on_header_line,
            streaming_callback=self._on_chunk,
            decompress_response=False,
            follow_redirects=False,
            allow_nonstandard_methods=True,  # a DELETE or GET with no body, a POST whose body is empty
            connect_timeout=CONNECT_TIMEOUT,
            request_timeout=REQUEST_TIMEOUT,
            **body,
        )
        return self.service.client.fetch(request, raise_error=False)

    def _on_header_line(self, line: str) -> None:
        if self._status is None:
            self._status = httputil.parse_response_start_line(line.strip())
            self._service_headers = httputil.HTTPHeaders()
        elif line.strip():
            assert self._service_headers is not None
            self._service_headers.parse_line(line)
        else:  # the end of the service's headers: they become this answer's
            assert self._service_headers is not None
            self.set_status(self._status.code, self._status.reason or None)
            for name in RESPONSE_HEADERS:
                if name in self._service_headers:
                    self.set_header(name, self._service_headers[name])
            if "Location" in self._service_headers:
                self.set_header(
                    "Location", self.service.local_location(self._service_headers["Location"], self.base_url)
                )

    def _on_chunk(self, chunk: bytes) -> Awaitable[None] | None:
        if self._whole_answer is not None:
            self._whole_answer.append(chunk)  # a small JSON answer, read whole
            return None
        if self._gone:
            raise StreamClosedError()  # the caller left: the connection to the service closes too
        self.write(chunk)
        return self.flush()  # the service's next chunk is read once this one is on its way

    async def proxy(self, body: bytes | None = None) -> None:
        """The verbs' one body: forward the request (started by prepare when its body streams, else
        with ``body`` or none), relay the answer."""
        if self.service.refuses(self.owner):
            raise self.service.guest_error()
        if self._answer is None:
            if body is None and self.request.method in BODY_METHODS:
                body = bytes(self._whole_body)
            self._answer = self._forward(body=body)
        elif self._body is not None:
            await self._body.put(_END)
        try:
            response = await self._answer
        except (OSError, HTTPClientError, StreamClosedError, _ClientLeft) as e:  # no answer, or a broken one
            self.relay_failure(e)
        else:
            self.relay_answer(response)

    def relay_answer(self, response: HTTPResponse) -> None:
        if response.code == 599:
            self.relay_failure(response.error)
        elif self._whole_answer is not None:
            self.finish(self.rewrite_answer(response.code, b"".join(self._whole_answer)))
        elif not self._finished:  # the service's whole answer went to the caller as it came
            self.finish()

    def rewrite_answer(self, code: int, body: bytes) -> bytes:
        """An answer read whole, as it goes to the caller."""
        return body

    def relay_failure(self, error: BaseException | None) -> None:
        if self._gone:
            return
        cause = f"{type(error).__name__}: {error}"
        where = f"the sandbox service at {self.service.url}"
        if not self._headers_written:
            self._status = None
            raise ServiceUnreachable(f"{where} did not answer: {cause}")
        self.log.error(
            "jupyter-sandbox: %s broke off its answer to %s %s: %s",
            where,
            self.request.method,
            self.request.path,
            cause,
        )
        if self._headers.get("Content-Type", "").startswith("application/x-ndjson"):
            # as an execution that fails mid-stream: said in the stream, which then ends
            line = {
                "type": "error",
                "name": "ServiceUnreachable",
                "value": f"{where} broke off: {cause}",
                "traceback": "",
            }
            self.finish(json.dumps(line) + "\n" + json.dumps({"type": "end_of_execution"}) + "\n")
        elif self.request.connection is not None:
            # a download cut short must not look complete: the caller's connection closes unfinished
            self.request.connection.close()  # type: ignore[attr-defined]  # HTTP1Connection's, not in the interface
            self._finished = True

    def on_connection_close(self) -> None:
        self._gone = True
        if self._body is not None:  # an upload cut short stops at the service too
            if self._body.full():
                self._body.get_nowait()  # the upload is void: a chunk less makes room for the stop
            self._body.put_nowait(_ABORT)
        super().on_connection_close()

    @web.authenticated
    @authorized
    async def get(self, *args: str, **kwargs: str) -> None:
        await self.proxy()

    @web.authenticated
    @authorized
    async def post(self, *args: str, **kwargs: str) -> None:
        await self.proxy()

    @web.authenticated
    @authorized
    async def put(self, *args: str, **kwargs: str) -> None:
        await self.proxy()

    @web.authenticated
    @authorized
    async def delete(self, *args: str, **kwargs: str) -> None:
        await self.proxy()


class ExecutingProxyHandler(ServiceProxyHandler):
    """The routes that run or stop code in a sandbox: jupyter_server's ``execute`` action, as theirs."""

    auth_action = "execute"

    @web.authenticated
    @authorized_to("execute")
    async def post(self, *args: str, **kwargs: str) -> None:
        await self.proxy()


class ConfigProxyHandler(ServiceProxyHandler):
    """``GET config``: the service's answer, and that this server is in Hub mode."""

    def rewrite_answer(self, code: int, body: bytes) -> bytes:
        if code != 200:
            return body
        config = json.loads(body)
        config["mode"] = "hub"
        return json.dumps(config).encode()

    @web.authenticated
    @authorized
    async def get(self, *args: str, **kwargs: str) -> None:
        self._whole_answer = []
        await self.proxy()


class SandboxesProxyHandler(ServiceProxyHandler):
    """``POST sandboxes`` with a ``kernel_id``: only this server sees its notebook kernels, so it
    checks the kernel (as SandboxesHandler does), creates the sandbox untied in the service and
    removes it itself when the kernel shuts down (SandboxApp's kernel actions)."""

    streams_body = False
    _kernel_id: str | None = None

    def rewrite_answer(self, code: int, body: bytes) -> bytes:
        if code != 201 or self._kernel_id is None:
            return body
        model = json.loads(body)
        self.service.kernel_sandboxes.setdefault(self._kernel_id, set()).add(model["id"])
        model["kernel_id"] = self._kernel_id
        return json.dumps(model).encode()

    @web.authenticated
    @authorized
    async def post(self, *args: str, **kwargs: str) -> None:
        if self.service.refuses(self.owner):
            raise self.service.guest_error()
        self.request.body = bytes(self._whole_body)
        request = self.json_body()
        kernel_id = request.get("kernel_id") if isinstance(request, dict) else None
        if kernel_id is None:
            await self.proxy()
            return
        if not isinstance(kernel_id, str):
            raise InvalidInput("kernel_id must be a string", field="kernel_id")
        self.check_own_kernel(kernel_id)
        self._kernel_id = kernel_id
        self._whole_answer = []
        await self.proxy(json.dumps({k: v for k, v in request.items() if k != "kernel_id"}).encode())


class EventsProxyHandler(EventsHandler):
    """The events websocket: one to the service per caller, messages relayed both ways. Registered
    with this server's EventStreams too, so that the interrupts of this server's notebook kernels
    (which only it sees) reach the caller as without a Hub."""

    _service: websocket.WebSocketClientConnection | None = None
    _relay: asyncio.Task[None] | None = None

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        link: ServiceLink = self.settings["sandbox_service"]
        self._owner = owner_of(self)
        if link.refuses(self._owner):
            raise web.HTTPError(403, link.guest_error().message)
        target = link.websocket_target(api_path("events"))
        try:
            self._service = await websocket.websocket_connect(
                HTTPRequest(target, headers=link.headers(), connect_timeout=CONNECT_TIMEOUT)
            )
        except (OSError, HTTPClientError, StreamClosedError) as e:
            self.log.error("jupyter-sandbox: the sandbox service's events at %s did not answer: %s", target, e)
            raise web.HTTPError(502, f"the sandbox service at {link.url} did not answer: {e}") from None
        await websocket.WebSocketHandler.get(self, *args, **kwargs)  # the upgrade (authorized above)
        if self.ws_connection is None:  # the upgrade failed: no one to relay to
            self._service.close()

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self._relay = asyncio.ensure_future(self._relay_from_service())

    async def _relay_from_service(self) -> None:
        service = self._service
        assert service is not None
        while (message := await service.read_message()) is not None:
            if isinstance(message, bytes):
                self.write_message(message, binary=True)
            else:
                self.send(message)
        # the service closed the stream (it restarted, say): the caller reconnects
        self.close(service.close_code or 1011, service.close_reason or "the sandbox service closed the stream")

    def on_message(self, message: str | bytes) -> None:
        try:
            if self._service is not None:
                self._service.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass  # the relay above sees the close and closes this side

    def on_close(self) -> None:
        super().on_close()
        if self._relay is not None:
            self._relay.cancel()
        if self._service is not None:
            self._service.close()


# the routes whose handlers authorize jupyter_server's "execute" action rather than the method's
EXECUTING: set[type[web.RequestHandler]] = {
    handlers.ExecuteHandler,
    handlers.InterruptHandler,
    handlers.InputHandler,
    command_routes.CommandsHandler,
    command_routes.CommandHandler,
    command_routes.CommandStdinHandler,
    command_routes.WatchHandler,
}


# the routes whose answer (or request) this server reads on the way
SPECIAL: dict[type[web.RequestHandler], type[ServiceProxyHandler]] = {
    handlers.ConfigHandler: ConfigProxyHandler,
    handlers.SandboxesHandler: SandboxesProxyHandler,
}


def proxy_routes(routes: list[tuple[str, type[web.RequestHandler]]]) -> list[tuple[str, type[web.RequestHandler]]]:
    """A forwarding handler per route template, offering the methods the route's own handler offers
    (a 405 from this server for the others, as without a Hub)."""
    proxies: list[tuple[str, type[web.RequestHandler]]] = []
    for template, handler in routes:
        if issubclass(handler, websocket.WebSocketHandler):
            # a websocket is relayed by a handler of its own (EventsProxyHandler); one without (a
            # sandboxed kernel's channels, which its provisioner opens at the service itself) is not served
            continue
        base = SPECIAL.get(handler, ExecutingProxyHandler if handler in EXECUTING else ServiceProxyHandler)
        methods = tuple(
            m
            for m in ("GET", "POST", "PUT", "DELETE")
            if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())
        )
        proxies.append((template, type(f"{handler.__name__}Proxy", (base,), {"SUPPORTED_METHODS": methods})))
    return proxies


# The extension's routes in Hub mode: REST, one-shot executions and events (the E2B routes are the
# service's own, behind Hub auth).
ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    *proxy_routes(
        [
            *handlers.ROUTES,
            *command_routes.ROUTES,
            *volume_routes.ROUTES,
            *keys.ROUTES,
            *admin.ROUTES,
            *oneshot.ROUTES,
            *pause_routes.ROUTES,
        ]
    ),
    (api_path("events"), EventsProxyHandler),
]
