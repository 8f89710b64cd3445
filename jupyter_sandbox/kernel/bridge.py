"""A local stand-in for a kernel whose channels travel over a websocket (Hub mode).

jupyter_client and jupyter_server reach a kernel through five ZMQ sockets and a signing key. In
Hub mode the kernel runs behind the sandbox service, which serves its channels as a websocket in
jupyter_server's own kernel protocol (server/kernel_ws.py). ``KernelBridge`` binds the sockets a
kernel would bind (ROUTER for shell, control and stdin; PUB for iopub; REP for the heartbeat,
answered here: liveness is the provisioner's poll), with a fresh key of its own. They are ipc
sockets in a directory only this server's user can enter: on a Hub host with many users, nobody
else can read the kernel's outputs (a kernel's usual TCP ports on 127.0.0.1 anyone can reach).

- a message from this server is verified with that key, and sent as JSON on the websocket;
- a message from the websocket is signed with that key and sent on its channel's socket, to the
  client that sent the request it answers (a ROUTER replies to one peer; the kernel behind the
  service sees only the service's one identity).

The kernel's own key stays with the service. The websocket is opened again if it drops (the
service restarted, the network blinked); meanwhile this server's messages wait in the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

import zmq
import zmq.asyncio
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection import base as ws_protocol
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

# jupyter_server's (de)serialisers of a message with buffers as one binary frame, typed
serialize_binary_message = cast("Callable[[dict[str, Any]], bytes]", ws_protocol.serialize_binary_message)
deserialize_binary_message = cast("Callable[[bytes], dict[str, Any]]", ws_protocol.deserialize_binary_message)

ROUTED = ("shell", "control", "stdin")  # the channels whose messages answer one client
MAX_MESSAGE_SIZE = 32 << 20  # a kernel message is at most 8 MiB on the relay's link; JSON escapes grow it
SOCKETS = {"shell": zmq.ROUTER, "iopub": zmq.PUB, "stdin": zmq.ROUTER, "control": zmq.ROUTER, "hb": zmq.REP}
PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}  # ipc "ports" are path suffixes
REMEMBERED_REQUESTS = 10_000  # requests whose sender is kept until answered (the oldest forgotten first)
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)  # seconds before each try to open the websocket again (then the last)


class KernelBridge:
    """Kernel sockets on 127.0.0.1 for jupyter_client, carried over the websocket at ``url``
    (authenticated with ``token``). ``start`` binds them and returns their connection info; ``connect``
    opens the websocket; ``close`` lets everything go."""

    def __init__(self, url: str, token: str | None, log: logging.Logger) -> None:
        self.url = url
        self.token = token
        self.log = log
        self.key = secrets.token_hex(32).encode()
        self.session = Session(key=self.key, signature_scheme="hmac-sha256")
        self._context = zmq.asyncio.Context()
        self._sockets: dict[str, zmq.asyncio.Socket] = {}
        self._socket_tasks: list[asyncio.Task[None]] = []
        self._dir = ""  # the sockets' directory (made by start)
        self._senders: OrderedDict[str, bytes] = OrderedDict()  # msg_id of a request -> its sender's identity
        self._ws: WebSocketClientConnection | None = None
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # -- life ------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Bind the sockets and start relaying this server's side; the connection info for jupyter_client."""
        self._dir = tempfile.mkdtemp(prefix="jsbx-bridge-")  # 0700
        self._bind()
        return {
            "transport": "ipc",
            "ip": self._path_prefix,
            **{f"{channel}_port": port for channel, port in PORTS.items()},
            "key": self.key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }

    @property
    def _path_prefix(self) -> str:
        return os.path.join(self._dir, "k")

    def _bind(self) -> None:
        for channel, kind in SOCKETS.items():
            path = f"{self._path_prefix}-{PORTS[channel]}"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by our own closed socket (libzmq leaves them)
            sock = self._context.socket(kind)
            sock.linger = 0
            if kind == zmq.ROUTER:
                sock.router_handover = True  # a client reconnecting with its identity takes its place back
            sock.bind(f"ipc://{path}")
            self._sockets[channel] = sock
        self._socket_tasks = [asyncio.ensure_future(self._from_server(channel)) for channel in ROUTED]
        self._socket_tasks.append(asyncio.ensure_future(self._heartbeat()))

    def rebind(self) -> None:
        """The sockets bound again at the same paths, for a restarted kernel: jupyter_client removes a
        kernel's ipc files when it restarts it. Its clients reconnect by themselves."""
        for task in self._socket_tasks:
            task.cancel()
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._bind()

    async def connect(self, timeout: float = 60.0) -> None:
        """Open the websocket (its error raised here: HTTPClientError 403/404, OSError), and keep it
        open from then on."""
        ws = await asyncio.wait_for(self._open(), timeout)
        self._tasks.append(asyncio.ensure_future(self._keep_reading(ws)))

    def close(self) -> None:
        self._closed = True
        for task in [*self._tasks, *self._socket_tasks]:
            task.cancel()
        if self._ws is not None:
            self._ws.close()
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._context.term()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _open(self) -> WebSocketClientConnection:
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        ws = await websocket_connect(HTTPRequest(self.url, headers=headers), max_message_size=MAX_MESSAGE_SIZE)
        self._ws = ws
        self._connected.set()
        return ws

    async def _keep_reading(self, ws: WebSocketClientConnection) -> None:
        while not self._closed:
            while (raw := await ws.read_message()) is not None:
                self._to_server(raw)
            self._connected.clear()
            self._ws = None
            if self._closed:
                return
            self.log.warning(
                "jupyter-sandbox: the kernel websocket %s closed (%s); opening it again", self.url, ws.close_reason
            )
            ws = await self._reopen()

    async def _reopen(self) -> WebSocketClientConnection:
        """The websocket opened again, after a pause. Refusals are tried again too: a service being
        restarted (its sandboxes taken back) may answer 404 or 503 meanwhile; if the sandbox is gone
        for good, the provisioner's poll says so and the kernel's shutdown closes this bridge."""
        attempt = 0
        while True:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                return await self._open()
            except (HTTPClientError, OSError) as e:
                self.log.warning("jupyter-sandbox: cannot open the kernel websocket %s again: %s", self.url, e)

    # -- both ways -------------------------------------------------------------------------
    async def _from_server(self, channel: str) -> None:
        """This server's messages on one channel: verified with the local key, to the websocket."""
        sock = self._sockets[channel]
        while True:
            frames = await sock.recv_multipart()
            try:
                idents, parts = self.session.feed_identities(frames)
                msg = self.session.deserialize(parts)
            except Exception as e:  # unsigned or malformed: not from a client of ours
                self.log.warning("jupyter-sandbox: dropped a %s message that did not verify: %s", channel, e)
                continue
            if idents:
                self._remember(msg["header"].get("msg_id", ""), idents[0])
            msg["channel"] = channel
            data: str | bytes
            if msg["buffers"]:
                data = serialize_binary_message(msg)
            else:
                msg.pop("buffers")
                data = json.dumps(msg, default=json_default)
            await self._send(data)

    async def _send(self, data: str | bytes) -> None:
        while True:
            await self._connected.wait()  # while the websocket reopens, messages wait here
            ws = self._ws
            if ws is None:
                continue
            try:
                await ws.write_message(data, binary=isinstance(data, bytes))
                return
            except WebSocketClosedError:
                if self._ws is ws:  # (not one opened since)
                    self._connected.clear()

    def _to_server(self, raw: str | bytes) -> None:
        """A kernel message from the websocket: signed with the local key, to its channel's socket."""
        try:
            msg = deserialize_binary_message(raw) if isinstance(raw, bytes) else json.loads(raw)
            channel = msg.pop("channel")
            buffers = msg.pop("buffers", None) or []
            parent = (msg.get("parent_header") or {}).get("msg_id", "")
        except Exception as e:
            self.log.warning("jupyter-sandbox: dropped a malformed message from the kernel websocket: %s", e)
            return
        idents: list[bytes] = []
        if channel in ROUTED:
            # a reply goes to the request's sender (forgotten then); input_request goes to the sender of
            # the execute_request it is part of (shell and stdin share a client's identity)
            sender = self._senders.get(parent) if channel == "stdin" else self._senders.pop(parent, None)
            if sender is None:
                self.log.debug("jupyter-sandbox: a %s message answers no request of ours; dropped", channel)
                return
            idents = [sender]
        elif channel != "iopub":
            self.log.warning("jupyter-sandbox: dropped a message on unknown channel %r", channel)
            return
        frames = self.session.serialize(msg, ident=idents)
        frames.extend(buffers)
        self._sockets[channel].send_multipart(frames)

    def _remember(self, msg_id: str, sender: bytes) -> None:
        self._senders[msg_id] = sender
        while len(self._senders) > REMEMBERED_REQUESTS:
            self._senders.popitem(last=False)

    async def _heartbeat(self) -> None:
        hb = self._sockets["hb"]
        while True:
            await hb.send_multipart(await hb.recv_multipart())
