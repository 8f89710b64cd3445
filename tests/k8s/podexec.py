"""pods/exec over WebSocket, driven by ``docker exec``.

The channel protocols (https://kubernetes.io/docs/reference/using-api/websockets/): every binary
message starts with its channel byte -- 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. On the
error channel the server sends, once, a Status: Success, or Failure with reason NonZeroExitCode
and the exit code in details.causes. ``v5.channel.k8s.io`` adds the close signal: a message
``[255, channel]`` from the client half-closes that channel (255, 0: end of stdin). With
``tty=true`` the command runs in a terminal (``serve_tty_exec``), sized by resize messages
(channel 4: ``{"Width": cols, "Height": rows}``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
from typing import Any

import docker
import docker.errors
from aiohttp import WSMsgType, web

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 64 * 1024
log = logging.getLogger(__name__)


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The error channel's Status for an exit code (v4 and v5)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {command}, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def wants_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def offers_protocol(request: web.Request) -> bool:
    """Whether the client asks for a channel protocol served here (the handshake fails otherwise)."""
    offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
    return bool(offered & set(PROTOCOLS))


async def serve_exec(
    request: web.Request, container_id: str, command: list[str], *, stdin: bool, stdout: bool, stderr: bool
) -> web.WebSocketResponse:
    """Run ``command`` in the container and relay its streams until it exits and the output is sent."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0, autoping=True, compress=False)
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    argv = ["docker", "exec", *(["-i"] if stdin else []), container_id, *command]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE if stdout else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE if stderr else asyncio.subprocess.DEVNULL,
    )
    send_lock = asyncio.Lock()
    # As the kubelet does: an empty message on the lowest channel the client will read, to say
    # the stream is established (clients must skip messages with no payload).
    await ws.send_bytes(bytes([STDOUT if stdout else STDERR if stderr else ERROR]))

    async def pump(stream: asyncio.StreamReader | None, channel: int) -> None:
        while stream is not None and (chunk := await stream.read(CHUNK)):
            if ws.closed:
                continue  # keep draining so the process never blocks on a full pipe
            async with send_lock:
                try:
                    await ws.send_bytes(bytes([channel]) + chunk)
                except ConnectionError:
                    pass  # the client is gone: the rest is drained and dropped (ws.closed from now on)

    async def feed() -> None:
        """Client messages: stdin data, resize (ignored: tty is off), v5 close of stdin."""
        async for msg in ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and proc.stdin is not None and payload:
                try:
                    proc.stdin.write(payload)
                    await proc.stdin.drain()
                except (ConnectionError, RuntimeError):
                    pass
            elif channel == CLOSE and v5 and payload[:1] == bytes([STDIN]) and proc.stdin is not None:
                proc.stdin.close()

    pumps = asyncio.gather(pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
    reader = asyncio.ensure_future(feed())
    waiting: set[asyncio.Future[Any]] = {pumps, reader}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if reader in done:
        # The client went away: stdin ends (as in Kubernetes, the process itself is not killed;
        # it sees end of input), and the docker CLI that relayed it is stopped after a grace.
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(pumps), 5)
        except asyncio.TimeoutError:
            proc.terminate()
            await pumps
    else:
        await pumps
    code = await proc.wait()
    if not ws.closed:
        async with send_lock:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
        await ws.close()
    reader.cancel()
    return ws


def terminal_size(payload: bytes) -> tuple[int, int] | None:
    """(rows, cols) of a resize message: the JSON of a TerminalSize, ``{"Width": cols, "Height": rows}``."""
    try:
        size = json.loads(payload)
        return int(size["Height"]), int(size["Width"])
    except (ValueError, KeyError, TypeError):
        return None


async def serve_tty_exec(
    request: web.Request, engine: docker.APIClient, container_id: str, command: list[str], *, stdin: bool
) -> web.WebSocketResponse:
    """As ``serve_exec`` with ``tty=true``: the command in a terminal, an exec made through the engine's
    API (the docker CLI would resize it only later, on a SIGWINCH). As the kubelet does, stderr is
    not a stream of its own (the terminal carries both). A resize message (channel 4) resizes the
    exec before the messages after it are read, as the kubelet's resize stream does in order."""
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0, autoping=True, compress=False)
    await ws.prepare(request)

    def begin() -> tuple[str, Any]:
        exec_id = engine.exec_create(container_id, command, stdin=stdin, tty=True)["Id"]
        return exec_id, engine.exec_start(exec_id, socket=True, tty=True)

    exec_id, sock = await asyncio.to_thread(begin)
    raw: socket.socket = getattr(sock, "_sock", sock)
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    await ws.send_bytes(bytes([STDOUT]))

    async def pump() -> None:
        while True:
            try:
                chunk = await loop.sock_recv(raw, CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                return
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(bytes([STDOUT]) + chunk)

    async def feed() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN and stdin and payload:
                with contextlib.suppress(OSError):
                    await loop.sock_sendall(raw, payload)
            elif channel == RESIZE and (size := terminal_size(payload)):
                await asyncio.to_thread(resize, *size)

    def resize(rows: int, cols: int) -> None:
        """Resize the exec's terminal; one not started yet is waited for (an ended one is let be)."""
        for _ in range(100):
            try:
                engine.exec_resize(exec_id, height=rows, width=cols)
                return
            except docker.errors.APIError:
                state = engine.exec_inspect(exec_id)
                if state["Running"] or state["ExitCode"] is not None:
                    return  # ended (or gone) meanwhile: nothing to resize, as the kubelet ignores it
                time.sleep(0.02)

    def exit_code() -> int:
        for _ in range(100):  # the engine may say Running just after the stream closed
            state = engine.exec_inspect(exec_id)
            if not state["Running"]:
                return int(state["ExitCode"] or 0)
            time.sleep(0.02)
        return 1

    reader = asyncio.ensure_future(feed())
    pumping = asyncio.ensure_future(pump())
    await asyncio.wait({pumping, reader}, return_when=asyncio.FIRST_COMPLETED)
    # the client went away: the terminal hangs up (as the kubelet's stream does; the command stays)
    sock.close()
    await asyncio.gather(pumping, return_exceptions=True)
    if not ws.closed:
        code = await asyncio.to_thread(exit_code)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
        await ws.close()
    reader.cancel()
    return ws
