"""An in-process kernel client over a :class:`~.kernel_relay.KernelRelay`: no second ZMQ hop.

The relay decodes the kernel's messages from the sandbox's stream (and cleans their outputs);
``DirectKernelClient`` takes them from it as frames, on the same event loop, instead of through
the relay's ZMQ sockets and jupyter_client's asyncio channels. It has its own routing identity:
the replies and stdin requests addressed to it come to it (and not to the sockets), iopub comes to
it and to the sockets both. Its requests go to the relay as if a socket had received them. The ZMQ
sockets stay for external clients (a notebook reaches a kernel-kind sandbox through them).

It implements ``kernel_client.KernelClient``, the part of jupyter_client's ``AsyncKernelClient``
that core uses. Messages are parsed when they are taken, as ``Session.deserialize`` would (signature
checked, replays refused), except that header dates stay strings: nothing here reads them.

Its iopub queue is bounded in bytes: over ``max_iopub_bytes`` the relay stops reading the sandbox's
stream until the queue is read (the output then waits in the sandbox), so a big output does not
pile up in the server. A reader waiting on another channel while iopub is full gets iopub dropped
instead (as a full ZMQ queue drops): its answer may be behind the output nobody reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import queue
from collections import deque
from datetime import datetime, timezone
from typing import Any

from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

from .kernel_relay import KernelRelay
from .programs.frames import CONTROL, DELIMITER, IOPUB, SHELL, STDIN

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "5.3"
DIGEST_HISTORY = 1 << 16  # signatures remembered against replays (jupyter_client's default)
MAX_IOPUB_BYTES = 4 << 20  # iopub bytes queued unread before the relay stops reading the stream
# Shell and stdin bytes queued unread: the kernel knows this client's identity and may send it
# replies nobody asked for; beyond this the oldest go (as a full ZMQ queue drops)
MAX_REPLY_BYTES = 4 << 20


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _pack(obj: Any) -> bytes:
    # jupyter_client's json_packer, without its deprecated fallback for objects that are not JSON
    return json.dumps(obj, default=json_default, ensure_ascii=False, allow_nan=False).encode(
        "utf8", errors="surrogateescape"
    )


def _unpack(frame: bytes) -> Any:
    return json.loads(frame.decode("utf8", "replace"))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Channel:
    """One channel's queue of frames and the reader waiting on it."""

    def __init__(self, client: DirectKernelClient, kind: int):
        self._client = client
        self.kind = kind
        self.frames: deque[list[bytes]] = deque()
        self.nbytes = 0
        self.closed = False
        self._waiters: list[asyncio.Future[None]] = []

    def put(self, parts: list[bytes]) -> None:
        self.frames.append(parts)
        self.nbytes += sum(len(p) for p in parts)
        if self.kind != IOPUB:  # iopub holds the relay instead (DirectKernelClient.holding)
            while self.nbytes > MAX_REPLY_BYTES and len(self.frames) > 1:
                self.take()
                self._client.dropped += 1
        self.wake()

    def take(self) -> list[bytes]:
        parts = self.frames.popleft()
        self.nbytes -= sum(len(p) for p in parts)
        return parts

    def wake(self) -> None:
        for waiter in self._waiters:
            _resolve(waiter)

    async def get(self, timeout: float | None) -> dict[str, Any]:
        """The next message, parsed; queue.Empty when none came within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self.frames and not self.closed:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(left, _resolve, waiter) if left is not None else None
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
                if timer is not None:
                    timer.cancel()
        if not self.frames:
            raise queue.Empty
        parts = self.take()
        if self.kind == IOPUB:
            self._client._iopub_taken()
        return self._client._parse(parts)

    def close(self) -> None:
        self.closed = True
        self.frames.clear()
        self.nbytes = 0
        self.wake()
        if self.kind == IOPUB:
            self._client._iopub_taken()  # nothing is held for it any more


class _ControlChannel:
    def __init__(self, client: DirectKernelClient):
        self._client = client

    def send(self, msg: dict[str, Any]) -> None:
        self._client._send(CONTROL, msg)


class DirectKernelClient:
    """A kernel client reading and writing a relay's messages in-process (see the module's docstring)."""

    def __init__(self, relay: KernelRelay, max_iopub_bytes: int = MAX_IOPUB_BYTES):
        self.relay = relay
        self.max_iopub_bytes = max_iopub_bytes
        self.identity = b"direct-" + os.urandom(8).hex().encode()
        self._key = relay.key.encode()
        self._session = Session(key=self._key, check_pid=False)
        self._session_id = self._session.session
        self._count = 0
        self._digests: set[bytes] = set()
        self._digest_order: deque[bytes] = deque()
        self._shell = _Channel(self, SHELL)
        self._iopub = _Channel(self, IOPUB)
        self._stdin = _Channel(self, STDIN)
        self._channels = {SHELL: self._shell, IOPUB: self._iopub, STDIN: self._stdin}
        self._control = _ControlChannel(self)
        self.dropped = 0  # messages dropped unread: iopub for a reader waiting elsewhere, replies over their bound
        self._stopped = False
        self._held = False  # the relay was told to stop reading for this client
        relay.direct_clients.append(self)
        # the launcher's iopub SUB subscribes as the host's clients do: to everything, here
        relay.send(IOPUB, [b"\x01"])

    # -- what core uses (kernel_client.KernelClient) -----------------------------------------
    @property
    def session(self) -> Session:
        return self._session

    @property
    def control_channel(self) -> _ControlChannel:
        return self._control

    @property
    def iopub_channel(self) -> _Channel:
        return self._iopub

    def execute(
        self,
        code: str,
        silent: bool = False,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool | None = None,
        stop_on_error: bool = True,
    ) -> str:
        if not isinstance(code, str):
            raise ValueError(f"code {code!r} must be a string")
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": True if allow_stdin is None else allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self._request(SHELL, "execute_request", content)

    def kernel_info(self) -> str:
        return self._request(SHELL, "kernel_info_request", {})

    def input(self, string: str) -> None:
        self._request(STDIN, "input_reply", {"value": string})

    async def get_shell_msg(self, timeout: float | None = None) -> dict[str, Any]:
        self._unblock()
        return await self._shell.get(timeout)

    async def get_iopub_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return await self._iopub.get(timeout)

    async def get_stdin_msg(self, timeout: float | None = None) -> dict[str, Any]:
        self._unblock()
        return await self._stdin.get(timeout)

    def stop_channels(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self in self.relay.direct_clients:
            self.relay.direct_clients.remove(self)
        for channel in self._channels.values():
            channel.close()
        if self._held:
            self._held = False
            self.relay.resume()

    # -- what the relay calls ----------------------------------------------------------------
    def deliver(self, kind: int, parts: list[bytes]) -> bool:
        """Take a message from the sandbox (cleaned). True when it was addressed to this client
        alone (a reply or a stdin request to its identity): the relay's sockets then skip it."""
        if kind == IOPUB:
            if not self._iopub.closed:
                self._iopub.put(parts)
            return False
        # Deno's kernel sends its replies without the request's identities: with none, the
        # reply is this client's (the sockets' clients reach only Python kernels, which echo them)
        if parts[0] != self.identity and parts[0] != DELIMITER:
            return False
        channel = self._channels.get(kind)
        if channel is not None and not channel.closed:
            channel.put(parts)
        return True  # control replies: nobody reads them (interrupts are not answered here)

    @property
    def holding(self) -> bool:
        """Over its bound: the relay stops reading the stream until this client resumes it."""
        if self._iopub.nbytes > self.max_iopub_bytes:
            self._held = True
        return self._held

    # -- inside --------------------------------------------------------------------------------
    def _iopub_taken(self) -> None:
        if self._held and self._iopub.nbytes <= self.max_iopub_bytes // 2:
            self._held = False
            self.relay.resume()

    def _unblock(self) -> None:
        """A reader waits on shell or stdin while iopub holds the stream: its answer may be behind
        output nobody reads now, so that output goes (as a full ZMQ queue drops it)."""
        if not self._held:
            return
        while self._iopub.nbytes > self.max_iopub_bytes // 2:
            self._iopub.take()
            self.dropped += 1
        log.debug("kernel %s: %d iopub messages dropped unread so far", self.relay.kernel_id, self.dropped)
        self._held = False
        self.relay.resume()

    def _request(self, kind: int, msg_type: str, content: dict[str, Any]) -> str:
        self._count += 1
        msg_id = f"{self._session_id}_{self._count}"
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": self._session.username,
            "session": self._session_id,
            "date": _now(),
            "version": PROTOCOL_VERSION,
        }
        self._send(kind, {"header": header, "parent_header": {}, "metadata": {}, "content": content})
        return msg_id

    def _send(self, kind: int, msg: dict[str, Any]) -> None:
        frames = [_pack(msg["header"]), _pack(msg.get("parent_header") or {})]
        frames += [_pack(msg.get("metadata") or {}), _pack(msg.get("content") or {})]
        self.relay.send(kind, [self.identity, DELIMITER, self._sign(frames), *frames])

    def _sign(self, frames: list[bytes]) -> bytes:
        if not self._key:
            return b""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode()

    def _parse(self, parts: list[bytes]) -> dict[str, Any]:
        """A message as jupyter_client's Session.deserialize gives it (dates left as strings);
        ValueError, TypeError or KeyError for one it would refuse."""
        frames = parts[parts.index(DELIMITER) + 1 :]  # ValueError without one, as jupyter_client
        if self._key:
            signature = frames[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self._digests:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            self._remember(signature)
            if not hmac.compare_digest(signature, self._sign(frames[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
        if len(frames) < 5:
            raise TypeError("malformed message, must have at least 5 elements")
        header = _unpack(frames[1])
        return {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": _unpack(frames[2]),
            "metadata": _unpack(frames[3]),
            "content": _unpack(frames[4]),
            "buffers": [memoryview(b) for b in frames[5:]],
        }

    def _remember(self, signature: bytes) -> None:
        self._digests.add(signature)
        self._digest_order.append(signature)
        if len(self._digest_order) > DIGEST_HISTORY:
            self._digests.discard(self._digest_order.popleft())
