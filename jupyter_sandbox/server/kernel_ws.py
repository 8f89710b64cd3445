"""A notebook's whole kernel in a sandbox, reached over HTTP and a websocket (issue 20's Hub mode).

A user's server in Hub mode holds no engine: its "Python 3 (sandboxed)" kernel's provisioner
(jupyter_sandbox/kernel/remote.py) asks the sandbox service for a ``kind="kernel"`` sandbox, and
its local bridge (kernel/bridge.py) carries the kernel's channels over the websocket served here.
These routes are the extension's, so a server with its own engine serves them too:

- ``POST sandbox/api/kernels``: a sandbox whose kernel is a notebook's whole kernel;
- ``GET|DELETE sandbox/api/sandboxes/{id_or_name}/kernel``: why its kernel is gone (liveness),
  stopping the kernel process (the sandbox stays);
- ``POST sandbox/api/sandboxes/{id_or_name}/kernel/restart``: a fresh kernel in place;
- ``GET sandbox/api/sandboxes/{id_or_name}/channels``: a websocket speaking jupyter_server's kernel
  protocol (``/api/kernels/{id}/channels``, its default JSON form: one message per frame with a
  ``channel`` field; a binary frame when a message has buffers). Messages travel to and from the
  kernel's sockets on this host (the backend's relay, which makes outputs inert as for every
  client) signed with the kernel's key, which never leaves this process. The heartbeat is not
  carried: liveness is the ``kernel`` route's.

Interrupt (``POST .../interrupt``) and removal (``DELETE .../{id_or_name}``) are the sandbox routes.
Every route acts on the caller's own sandboxes (``owner_of``); another user's answers 404.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.services.kernels.connection import base as ws_protocol
from jupyter_server.utils import url_path_join
from tornado import web, websocket

from ..core.manager import SandboxManager
from ..errors import Conflict, InvalidInput, SandboxError
from ..models import SandboxModel, SandboxRequest
from .handlers import AUTH_RESOURCE, SandboxAPIHandler, api_path, authorized_to, owner_of, refuse_upgrade

# jupyter_server's (de)serialisers of a message with buffers as one binary frame, typed
serialize_binary_message = cast("Callable[[dict[str, Any]], bytes]", ws_protocol.serialize_binary_message)
deserialize_binary_message = cast("Callable[[bytes], dict[str, Any]]", ws_protocol.deserialize_binary_message)

# the channels a client writes to; iopub is the kernel's only
CLIENT_CHANNELS = ("shell", "control", "stdin")


def kernel_sandbox(manager: SandboxManager, owner: str, ref: str) -> SandboxModel:
    """The owner's sandbox ``ref`` if it runs a notebook's whole kernel (Conflict if not: these
    routes must not stop or replace the kernel an API sandbox's executions use)."""
    model = manager.get(owner, ref)
    if model.kind != "kernel":
        raise Conflict(f"sandbox {ref!r} is not a notebook kernel's sandbox (create one with POST sandbox/api/kernels)")
    return model


class KernelSandboxesHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("execute")
    async def post(self) -> None:
        request = SandboxRequest.parse(self.json_body())
        if request.kernel_id is not None:
            # the kernel is the caller's (on their own server); this server has no kernel of that id
            raise InvalidInput(
                "kernel_id is not taken here: the sandbox's own kernel is the notebook's", field="kernel_id"
            )
        model = await self.manager.create(self.owner, request.name, request.spec(), kind="kernel")
        self.set_header("Location", url_path_join(self.base_url, api_path("sandboxes", model.id)))
        self.write_json(self.model_dict(model), status=201)


class KernelHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        kernel_sandbox(self.manager, self.owner, id_or_name)
        self.write_json({"exit_reason": await self.manager.kernel_exit_reason(self.owner, id_or_name)})

    @web.authenticated
    @authorized_to("execute")
    async def delete(self, id_or_name: str) -> None:
        kernel_sandbox(self.manager, self.owner, id_or_name)
        await self.manager.stop_kernel(self.owner, id_or_name)
        self.no_content()


class KernelRestartHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("execute")
    async def post(self, id_or_name: str) -> None:
        kernel_sandbox(self.manager, self.owner, id_or_name)
        await self.manager.restart_kernel(self.owner, id_or_name)
        self.write_json(self.model_dict(self.manager.get(self.owner, id_or_name)))


class KernelChannelsHandler(WebSocketMixin, JupyterHandler, websocket.WebSocketHandler):
    """The kernel websocket of one ``kind="kernel"`` sandbox. (WebSocketMixin: the origin check,
    pings, and a 403 rather than a login redirect.)"""

    auth_resource = AUTH_RESOURCE
    _client: AsyncKernelClient | None = None
    _sockets: dict[str, zmq.asyncio.Socket]
    _readers: list[asyncio.Task[None]]

    @ws_authenticated
    @authorized_to("execute")
    async def get(self, id_or_name: str) -> None:
        manager: SandboxManager = self.settings["sandbox_manager"]
        owner = owner_of(self)
        try:
            info = manager.kernel_connection(owner, id_or_name)  # Conflict for an API sandbox
        except SandboxError as e:
            refuse_upgrade(self, e)
            return
        # jupyter_client's client knows the sockets' types and addresses; its channels are not started:
        # the raw sockets are read here, so that every message (comms, debug, completions) passes.
        client = AsyncKernelClient(context=zmq.asyncio.Context.instance())
        client.load_connection_info(cast("KernelConnectionInfo", info))
        self._client = client
        await super().get(id_or_name)

    @property
    def session(self) -> Session:
        assert self._client is not None
        session: Session = self._client.session
        return session

    def open(self, *args: Any, **kwargs: Any) -> None:
        assert self._client is not None
        # shell and stdin share an identity: the kernel sends input_request to the shell request's sender
        identity = secrets.token_hex(16).encode()
        self._sockets = {
            "shell": cast("zmq.asyncio.Socket", self._client.connect_shell(identity=identity)),
            "control": cast("zmq.asyncio.Socket", self._client.connect_control(identity=identity)),
            "stdin": cast("zmq.asyncio.Socket", self._client.connect_stdin(identity=identity)),
            "iopub": cast("zmq.asyncio.Socket", self._client.connect_iopub()),
        }
        self._readers = [asyncio.ensure_future(self._forward(name, sock)) for name, sock in self._sockets.items()]
        super().open(*args, **kwargs)  # WebSocketMixin's pings

    async def _forward(self, channel: str, sock: zmq.asyncio.Socket) -> None:
        """The kernel's messages on one channel, verified with its key, to the websocket."""
        while True:
            frames = await sock.recv_multipart()
            try:
                _idents, parts = self.session.feed_identities(frames)
                msg = self.session.deserialize(parts)
            except Exception as e:  # a message the relay passed but the key refuses: drop it, say so
                self.log.warning("jupyter-sandbox: dropped a %s message that did not verify: %s", channel, e)
                continue
            msg["channel"] = channel
            try:
                if msg["buffers"]:
                    await self.write_message(serialize_binary_message(msg), binary=True)
                else:
                    msg.pop("buffers")
                    await self.write_message(json.dumps(msg, default=json_default))
            except websocket.WebSocketClosedError:
                return

    def on_message(self, message: str | bytes) -> None:
        try:
            msg = deserialize_binary_message(message) if isinstance(message, bytes) else json.loads(message)
            channel = msg.pop("channel", None)
            if channel not in CLIENT_CHANNELS:
                raise ValueError(f"channel must be one of {', '.join(CLIENT_CHANNELS)}, not {channel!r}")
            frames = self.session.serialize(msg)
        except Exception as e:  # a bad message is the sender's problem: the socket stays open
            self.log.warning("jupyter-sandbox: dropped a malformed kernel message: %s", e)
            return
        frames.extend(msg.get("buffers") or [])
        self._sockets[channel].send_multipart(frames)

    def on_close(self) -> None:
        if self.ping_callback is not None:
            self.ping_callback.stop()
        for task in getattr(self, "_readers", []):
            task.cancel()
        for sock in getattr(self, "_sockets", {}).values():
            sock.close(linger=0)


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("kernels"), KernelSandboxesHandler),
    (api_path("sandboxes/{id_or_name}/kernel"), KernelHandler),
    (api_path("sandboxes/{id_or_name}/kernel/restart"), KernelRestartHandler),
    (api_path("sandboxes/{id_or_name}/channels"), KernelChannelsHandler),
]
