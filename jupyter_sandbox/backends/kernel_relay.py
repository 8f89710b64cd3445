"""Host side of the kernel relay: a kernel's ZMQ sockets served over one byte stream.

The kernel runs in the sandbox under ``programs/launcher.py`` (see its docstring for the wire
format and the launcher's request, events and ops). Here, :class:`KernelRelay` binds the
five sockets a kernel would bind (ROUTER for shell/stdin/control/hb, XPUB for iopub) at
``ipc://{socket_dir}/k-<kernel_id>-<n>`` in a directory private to the server, and
forwards frames both ways over the stream. ``jupyter_client`` connects to those sockets as
to any local kernel. Nothing is mounted into the sandbox and nothing is read from a file
the sandbox can write: pid, log and exit status arrive on the stream.

The stream is an asyncio reader/writer pair: a local subprocess's pipes
(:func:`open_subprocess_launcher`) or a Docker exec's hijacked socket
(:func:`open_docker_exec`, which removes Docker's stdout/stderr multiplexing).
Everything runs on the caller's event loop; no thread per stream.

Typical use::

    stream = await open_docker_exec(client.api, container_id, "start", user="1000:1000")
    relay = KernelRelay(stream.reader, stream.writer, socket_dir, kernel_id, key)
    info = await relay.start(start_request(kernel_id, key, ["python", "-m", "ipykernel_launcher",
                                                            "-f", "{connection_file}"]))
    await relay.wait_ready()        # the launcher started the kernel (KernelExited if not)
    client = AsyncKernelClient(); client.load_connection_info(info)
    ...
    await relay.exited              # {"code", "signal", "log", "error", "reason"}
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import ssl
import stat
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import zmq

from ..outputs import DEFAULT as DEFAULT_OUTPUTS
from ..outputs import OutputPolicy

if TYPE_CHECKING:
    from .kernel_channels import DirectKernelClient

log = logging.getLogger(__name__)

SHELL, IOPUB, STDIN, CONTROL, HB, LAUNCHER = 0, 1, 2, 3, 4, 255
CHANNELS = {SHELL: "shell", IOPUB: "iopub", STDIN: "stdin", CONTROL: "control", HB: "hb"}
PORTS = {SHELL: 1, IOPUB: 2, STDIN: 3, CONTROL: 4, HB: 5}  # ipc "ports" are path suffixes
DEFAULT_STATE_DIR = "/tmp/.jsbx"  # in the sandbox: its own tmpfs, made 0700 by the launcher
KERNEL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")  # the launcher's rule too
MAX_UNIX_PATH = 107
MAX_PARTS = 1 << 16
STDERR_CAP = 64 * 1024  # launcher stderr bytes logged per stream
LOG_CAP = 64 * 1024  # characters of kernel log accepted from the launcher (it keeps 64 KiB)
MAX_EVENT_BYTES = 1 << 20  # a launcher event (JSON); the largest real one holds LOG_CAP of log
DELIMITER = b"<IDS|MSG>"
DROPPED = "jupyter_sandbox_dropped"  # metadata of a cut-down message: bytes it lost (the collector counts them)
OUTPUT_CAP = 8 << 20  # a message bigger than this is cut down here too (the launcher's IOPUB_CAP)

NOBLOCK, EVENTS, POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)  # ints: no enum arithmetic
_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")


class KernelRelayError(Exception):
    """The relay cannot do what was asked (bad arguments, launcher gone, no answer)."""


class RelayProtocolError(KernelRelayError):
    """The stream from the sandbox does not follow the wire format."""


class KernelExited(KernelRelayError):
    """The kernel exited (or the stream closed) before it was ready."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        if info.get("reason") in ("stream closed", "relay closed"):
            text = f"the {info['reason'].split()[0]} to the sandbox closed before the kernel was ready"
            if info.get("error"):
                text += f" ({info['error']})"
        elif info.get("error"):
            text = info["error"]
        elif info.get("signal"):
            text = f"the kernel was killed by signal {info['signal']}"
        else:
            text = f"the kernel exited with code {info.get('code')}"
        super().__init__(text)


# -- the launcher program and its requests --------------------------------------------------
@functools.cache
def launcher_source() -> str:
    """The source text of launcher.py (package data), run with ``python -I -c``."""
    return resources.files(__package__).joinpath("programs", "launcher.py").read_text(encoding="utf-8")


def launcher_command(mode: str, python: str = "python") -> list[str]:
    if mode not in ("start", "attach"):
        raise ValueError(f"mode must be 'start' or 'attach', not {mode!r}")
    return [python, "-I", "-c", launcher_source(), mode]


def _check_kernel_id(kernel_id: str) -> str:
    if not isinstance(kernel_id, str) or not KERNEL_ID.match(kernel_id):
        raise ValueError(f"kernel id must match {KERNEL_ID.pattern}: {kernel_id!r}")
    return kernel_id


def _key_text(key: bytes | str) -> str:
    return key.decode("ascii") if isinstance(key, bytes) else key


def start_request(
    kernel_id: str,
    key: bytes | str,
    argv: list[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    state_dir: str = DEFAULT_STATE_DIR,
    signature_scheme: str = "hmac-sha256",
    kernel_name: str = "",
) -> dict[str, Any]:
    """The ``start`` request: ``{connection_file}`` in argv becomes the file's path in the sandbox."""
    return {
        "kernel_id": _check_kernel_id(kernel_id),
        "connection": {"key": _key_text(key), "signature_scheme": signature_scheme, "kernel_name": kernel_name},
        "argv": list(argv),
        "cwd": cwd,
        "env": dict(env or {}),
        "state_dir": state_dir,
    }


def attach_request(kernel_id: str, key: bytes | str = "", *, state_dir: str = DEFAULT_STATE_DIR) -> dict[str, Any]:
    """The ``attach`` request; with the kernel's key the launcher can cut big outputs down."""
    return {"kernel_id": _check_kernel_id(kernel_id), "state_dir": state_dir, "key": _key_text(key)}


# -- wire format ---------------------------------------------------------------------------
def encode(kind: int, parts: list[bytes], out: list[bytes]) -> None:
    out.append(_HEAD.pack(kind, len(parts)))
    for p in parts:
        out.append(_LEN.pack(len(p)))
        out.append(p)


class Skipped:
    """A part too big to keep (see FrameDecoder): only its size, and for a message's content
    whether the message's signature held (computed while its bytes streamed past)."""

    __slots__ = ("size", "valid")

    def __init__(self, size: int):
        self.size = size
        self.valid: bool | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Skipped) and other.size == self.size

    def __repr__(self) -> str:
        return f"Skipped({self.size})"


class FrameDecoder:
    """Incremental decoder: state is kept across chunks, each byte is looked at once.

    At most ``max_message_bytes`` of one message are held: a part that would go over is not
    buffered but skipped as its bytes arrive, and stands in the message as a :class:`Skipped`.
    With the kernel's ``key``, a skipped content part still gets its signature checked.
    """

    def __init__(self, max_message_bytes: int, key: bytes = b""):
        self.max_message_bytes = max_message_bytes
        self._key = key
        self._buf = bytearray()
        self._kind: int | None = None
        self._left = 0
        self._parts: list[bytes | Skipped] = []
        self._size = 0
        self._skip = 0  # bytes of the current (skipped) part still to come
        self._skipped: Skipped | None = None
        self._mac: Any = None  # the signature being computed over a skipped content part
        self.consumed = 0  # bytes taken from the stream so far (skipped ones included)
        self.skipped = 0  # of which skipped

    def push(self, data: bytes) -> None:
        """Buffer ``data`` to be parsed by the next ``feed``."""
        self._buf += data

    @property
    def partial(self) -> bool:
        """Whether a message has begun and not ended (or bytes wait to be parsed)."""
        return bool(self._buf) or self._kind is not None

    def feed(self, data: bytes, limit: int | None = None) -> list[tuple[int, list[Any]]]:
        """The messages completed by ``data``; with ``limit``, at most that many (the rest of the
        data stays buffered: call ``feed(b"")`` again)."""
        buf = self._buf
        buf += data
        out: list[tuple[int, list[Any]]] = []
        with memoryview(buf) as view:  # slices of a view: each part is copied once
            pos = self._parse(view, out, limit)
        del buf[:pos]  # bytearray drops a prefix in O(1) amortized
        self.consumed += pos
        return out

    def _parse(self, buf: memoryview, out: list, limit: int | None) -> int:
        """Take whole parts from buf; returns how many bytes were consumed."""
        pos, end = 0, len(buf)
        while True:
            if self._skip:
                take = min(self._skip, end - pos)
                if self._mac is not None:
                    self._mac.update(buf[pos : pos + take])
                pos += take
                self.skipped += take
                self._skip -= take
                if self._skip:
                    return pos
                self._end_skip()
            elif self._kind is None:
                if limit is not None and len(out) >= limit:
                    return pos
                if end - pos < 5:
                    return pos
                kind, count = _HEAD.unpack_from(buf, pos)
                pos += 5
                if kind > HB and kind != LAUNCHER:
                    raise RelayProtocolError(f"unknown message kind {kind}")
                if count > MAX_PARTS:
                    raise RelayProtocolError(f"message with {count} parts")
                self._kind, self._left, self._parts, self._size = kind, count, [], 0
            elif self._left:
                if end - pos < 4:
                    return pos
                (n,) = _LEN.unpack_from(buf, pos)
                if self._size + n > self.max_message_bytes:
                    pos += 4
                    self._start_skip(n)
                    continue
                if end - pos < 4 + n:
                    return pos
                self._parts.append(bytes(buf[pos + 4 : pos + 4 + n]))
                pos += 4 + n
                self._size += n
                self._left -= 1
            if self._kind is not None and not self._left and not self._skip:
                out.append((self._kind, self._parts))
                self._kind = None

    def _start_skip(self, n: int) -> None:
        self._skipped = Skipped(n)
        self._skip = n
        parts = self._parts
        try:
            d = parts.index(DELIMITER)
        except ValueError:
            d = -1
        # content (the 4th signed frame) after a whole header, parent and metadata: its
        # signature can still be checked as its bytes go by
        if self._key and d >= 0 and len(parts) == d + 5 and all(isinstance(p, bytes) for p in parts[d + 1 :]):
            self._mac = hmac.new(self._key, digestmod=hashlib.sha256)
            for p in parts[d + 2 :]:
                self._mac.update(p)
        if not n:
            self._end_skip()

    def _end_skip(self) -> None:
        skipped = self._skipped
        assert skipped is not None
        if self._mac is not None:
            signature = self._parts[-4]
            skipped.valid = isinstance(signature, bytes) and hmac.compare_digest(
                self._mac.hexdigest().encode(), signature
            )
            self._mac = None
        self._parts.append(skipped)
        self._skipped = None
        self._left -= 1


# -- what the sandbox sends, made safe for the host -------------------------------------------
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str, limit: int = 500) -> str:
    """Sandbox text for one log line: control characters and line breaks escaped, length capped."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text[:limit])
    return text


class LogBudget:
    """At most ``lines`` log lines per ``period`` seconds about one sandbox stream; the rest are
    counted and said in one line (a sandbox must not be able to fill the server's log)."""

    def __init__(self, name: str, lines: int = 20, period: float = 60.0):
        self.name, self.lines, self.period = name, lines, period
        self._start = -period
        self._count = self._held = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._start >= self.period:
            if self._held:
                log.warning("%s: %d more log lines about its sandbox were held back", self.name, self._held)
            self._start, self._count, self._held = now, 0, 0
        if self._count < self.lines:
            self._count += 1
            log.log(level, f"%s: {msg}", self.name, *(printable(a) if isinstance(a, str) else a for a in args))
        else:
            self._held += 1


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _cut_content(msg_type: str, content: Any, size: int, iopub: bool) -> tuple[dict[str, Any] | None, int]:
    """A message's content cut down (or made up, when it was skipped), and how many bytes that dropped."""
    content = content if isinstance(content, dict) else {}
    if msg_type == "stream":
        text = content.get("text")
        keep = OUTPUT_CAP // 8  # characters: JSON may spend up to 6 bytes on one
        if isinstance(text, str) and text:
            return {"name": content.get("name"), "text": text[:keep]}, max(len(text) - keep, 0)
        note = f"[jupyter-sandbox: {size} bytes of output were dropped on the server]\n"
        return {"name": "stderr", "text": note}, size
    if msg_type in ("display_data", "execute_result", "update_display_data"):
        note = f"[jupyter-sandbox: an output of {size} bytes was dropped on the server]"
        cut = {k: content[k] for k in ("transient", "execution_count") if k in content}
        return {**cut, "data": {"text/plain": note}, "metadata": {}}, size
    if msg_type == "error" or "ename" in content or msg_type == "execute_reply":
        traceback = content.get("traceback")
        traceback = traceback[:200] if isinstance(traceback, list) else []
        evalue = content.get("evalue")
        cut = {
            "status": "error",
            "ename": str(content.get("ename") or "OutputTooLarge")[:200],
            "evalue": str(evalue)[:4096]
            if evalue is not None
            else f"the kernel's {msg_type} message of {size} bytes was too large for the server",
            "traceback": [str(line)[:4096] for line in traceback],
        }
        if msg_type == "execute_reply":
            cut["execution_count"] = content.get("execution_count")
            if content.get("status") == "ok":
                cut = {"status": "ok", "execution_count": cut["execution_count"], "user_expressions": {}, "payload": []}
        return cut, size
    if iopub:
        return None, size  # status, comm messages...: better lost than held
    note = f"the kernel's {msg_type} message of {size} bytes was too large for the server"
    return {"status": "error", "ename": "MessageTooLarge", "evalue": note, "traceback": []}, size


def cut_message(parts: list[Any], key: bytes, iopub: bool) -> list[bytes] | None:
    """A message over OUTPUT_CAP (or with Skipped parts) cut down like the launcher does in the
    sandbox, and signed again; None to drop it. A message whose signature does not hold keeps
    a bad signature, so that the client still rejects it."""
    try:
        d = parts.index(DELIMITER)
    except ValueError:
        return None
    signature, *signed = parts[d + 1 : d + 6]
    if len(signed) != 4 or not all(isinstance(p, bytes) for p in [*parts[:d], signature, *signed[:3]]):
        return None
    header_b, parent_b, metadata_b, content_b = signed
    size = content_b.size if isinstance(content_b, Skipped) else len(content_b)
    if isinstance(content_b, Skipped):
        valid = content_b.valid if key else True
        content = None
    else:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        for p in signed:
            mac.update(p)
        valid = hmac.compare_digest(mac.hexdigest().encode(), signature) if key else True
        content = _json(content_b) if valid else None
    if not valid:
        return [*parts[: d + 5], b"{}"]
    header = _json(header_b)
    msg_type = header.get("msg_type") if isinstance(header, dict) else None
    if not isinstance(msg_type, str):
        return None
    cut, dropped = _cut_content(msg_type, content, size, iopub)
    if cut is None:
        return None
    metadata = _json(metadata_b) if dropped == 0 else {DROPPED: dropped}
    frames = [header_b, parent_b, json.dumps(metadata).encode(), json.dumps(cut).encode()]
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for p in frames:
        mac.update(p)
    return [*parts[:d], DELIMITER, mac.hexdigest().encode() if key else b"", *frames]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_private_dir(path: str) -> None:
    """The sockets' directory must be ours and closed to everyone else (0700)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise KernelRelayError(f"socket directory {path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise KernelRelayError(f"socket directory {path} is not a directory (or is a symlink)")
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise KernelRelayError(
            f"socket directory {path} must be owned by this server's user and have mode 0700 "
            f"(it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
        )


# -- the relay -----------------------------------------------------------------------------
class KernelRelay:
    """Serve one kernel's five sockets on the host and forward them over a byte stream.

    Create it on the event loop that will run it. ``exited`` resolves with
    ``{"code", "signal", "log", "error", "reason"}``: reason ``"exited"`` when the launcher
    reported the kernel's exit (code is None when a signal killed it), ``"stream closed"``
    when the stream ended first (e.g. the container died; also when the sandbox stayed
    silent for ``liveness_timeout`` seconds, even to a ping), ``"relay closed"`` after
    :meth:`close`.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        socket_dir: str,
        kernel_id: str,
        key: bytes | str,
        *,
        context: zmq.Context | None = None,
        max_message_bytes: int = 10 << 20,
        write_buffer_limit: int = 4 << 20,
        liveness_timeout: float = 30.0,
        outputs: OutputPolicy = DEFAULT_OUTPUTS,
        bytes_per_second: float = 4 << 20,
        messages_per_second: float = 500,
        events_per_second: float = 20,
        partial_timeout: float = 20.0,
    ):
        self.kernel_id = _check_kernel_id(kernel_id)
        self.key = _key_text(key)
        self.socket_dir = os.path.abspath(socket_dir)
        self.ip = os.path.join(self.socket_dir, f"k-{kernel_id}")
        if len(f"{self.ip}-{PORTS[HB]}".encode()) > MAX_UNIX_PATH:
            raise KernelRelayError(
                f"socket path {self.ip}-5 is longer than {MAX_UNIX_PATH} bytes; use a shorter socket_dir"
            )
        self._reader = reader
        self._writer = writer
        self._context = context or zmq.Context.instance()
        self._decoder = FrameDecoder(max_message_bytes, self.key.encode())
        self._outputs = outputs.cleaner(self.key)  # what the sandbox shows, made inert (outputs.py)
        # What the sandbox may cost per second (token buckets; a burst of 4 s): over it, the
        # stream is not read until the budget is back, so a flood waits in the sandbox.
        self._rates = (float(bytes_per_second), float(messages_per_second), float(events_per_second))
        self._tokens = [4 * rate for rate in self._rates]
        self._refilled = 0.0
        self._charged = 0  # bytes of the stream charged to the budget
        self._pump_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._throttled = False  # not reading the stream: over budget, or parsing in turns
        self._throttled_since = 0.0
        self._throttled_total = 0.0  # seconds spent not reading, for the timeouts
        self._flowing = asyncio.Event()
        self._flowing.set()
        # a message begun and not ended: bounded in memory by the decoder, in time by this
        self.partial_timeout = partial_timeout
        self._partial_since: tuple[float, float] | None = None
        self._log = LogBudget(f"kernel {kernel_id}")
        self._write_buffer_limit = write_buffer_limit
        # An engine may keep an exec stream open after the sandbox died (seen with runsc):
        # a stream quiet for this long is pinged, and silent for this long is dead.
        self.liveness_timeout = liveness_timeout
        self._last_rx = 0.0
        self._liveness: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._sockets: dict[int, zmq.Socket] = {}
        self._fds: list[int] = []
        self._paused = False  # the stream's write buffer is full: ZMQ queues hold the rest
        self._bound: dict[str, int] = {}  # socket file -> inode
        self._tasks: list[asyncio.Task] = []
        self._out: list[bytes] = []
        self._out_size = 0
        self._log_waiters: list[asyncio.Future] = []
        self._closed = False
        self._stream_open = False
        self._got_message = False
        self.ready: asyncio.Future = self._loop.create_future()
        self.exited: asyncio.Future = self._loop.create_future()
        self.pid: int | None = None
        self.direct_clients: list[DirectKernelClient] = []  # in-process readers (kernel_channels.py)

    @property
    def connection_info(self) -> dict[str, Any]:
        return {
            "transport": "ipc",
            "ip": self.ip,
            "shell_port": PORTS[SHELL],
            "iopub_port": PORTS[IOPUB],
            "stdin_port": PORTS[STDIN],
            "control_port": PORTS[CONTROL],
            "hb_port": PORTS[HB],
            "key": self.key,
            "signature_scheme": "hmac-sha256",
            "kernel_name": "",
        }

    async def start(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Bind the sockets, send ``request`` (the launcher's first line) if given, start relaying.

        Returns the connection info for ``jupyter_client`` (``load_connection_info``).
        """
        if self._tasks or self._closed:
            raise KernelRelayError("this relay was already started")
        if request is not None:
            if request.get("kernel_id") != self.kernel_id:
                raise ValueError("the request is for another kernel id")
            connection = request.get("connection")
            if connection is not None and _key_text(connection.get("key", "")) != self.key:
                raise ValueError("the request's key is not this relay's key")
        _check_private_dir(self.socket_dir)
        types = {SHELL: zmq.ROUTER, IOPUB: zmq.XPUB, STDIN: zmq.ROUTER, CONTROL: zmq.ROUTER, HB: zmq.ROUTER}
        try:
            for kind, socktype in types.items():
                sock = zmq.Socket(self._context, socktype)  # plain, even from an asyncio context
                sock.linger = 0
                if socktype == zmq.XPUB:
                    # pass every (un)subscription on, so the kernel sees each client's
                    # subscription and a second client still gets its iopub_welcome
                    sock.setsockopt(zmq.XPUB_VERBOSER, 1)
                self._sockets[kind] = sock
                path = f"{self.ip}-{PORTS[kind]}"
                sock.bind(f"ipc://{path}")
                self._bound[path] = os.lstat(path).st_ino
        except zmq.ZMQError as e:
            self._close_sockets()
            raise KernelRelayError(f"cannot bind the kernel sockets in {self.socket_dir}: {e}") from e
        self._stream_open = True
        self._last_rx = self._loop.time()
        self._liveness = self._loop.call_later(self.liveness_timeout / 3, self._check_liveness)
        if request is not None:
            self._writer.write(json.dumps(request).encode() + b"\n")
        self._tasks.append(asyncio.ensure_future(self._from_stream()))
        # Plain sockets driven by the loop: pyzmq's asyncio futures cost more per message
        # than the whole relay. ZMQ_FD is edge-triggered, so every wakeup drains the socket.
        for kind, sock in self._sockets.items():
            fd = int(sock.getsockopt(zmq.FD))
            self._loop.add_reader(fd, self._drain, kind)
            self._fds.append(fd)
            self._drain(kind)
        return self.connection_info

    async def wait_ready(self, timeout: float | None = None) -> dict[str, Any]:
        """The launcher's ``started``/``attached`` event; KernelExited if the kernel is gone instead."""
        event = await asyncio.wait_for(asyncio.shield(self.ready), timeout)
        if event.get("event") in ("started", "attached"):
            return event
        raise KernelExited(await self.exited)

    # -- ops ---------------------------------------------------------------------------
    def _op(self, op: str) -> None:
        if not self._stream_open:
            raise KernelRelayError("the stream to the launcher is closed")
        self._queue(LAUNCHER, [json.dumps({"op": op}).encode()])
        self._flush()

    async def stop_kernel(self, timeout: float = 10) -> dict[str, Any]:
        """SIGKILL the kernel's process group; returns the exit info once the launcher reports it."""
        if not self.exited.done():
            self._op("stop")
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except asyncio.TimeoutError:
            raise KernelRelayError(f"the launcher did not report the kernel's exit within {timeout} s") from None

    async def interrupt_kernel(self) -> None:
        """SIGINT to the kernel's process group (for kernels with interrupt_mode 'signal')."""
        self._op("interrupt")

    async def log(self, timeout: float = 10) -> str:
        """The tail (<= 64 KiB) of the kernel's stdout+stderr; after the end, the tail sent with the exit."""
        if not self._stream_open:
            return self.exited.result()["log"] if self.exited.done() else ""
        waiter = self._loop.create_future()
        self._log_waiters.append(waiter)
        self._op("log")
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise KernelRelayError(f"the launcher did not answer with the log within {timeout} s") from None
        finally:
            if waiter in self._log_waiters:
                self._log_waiters.remove(waiter)

    async def close(self) -> None:
        """Stop relaying and close the sockets and the stream. The kernel is left running:
        a ``start`` launcher keeps it for a later ``attach`` (use stop_kernel to end it)."""
        if self._closed:
            return
        self._closed = True
        self._flush()
        self._stream_ended("relay closed")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._close_sockets()
        try:
            self._writer.close()
            await self._writer.wait_closed()
        except (ConnectionError, OSError) as e:
            log.debug("closing the stream of kernel %s: %s", self.kernel_id, e)

    def _close_sockets(self) -> None:
        for fd in self._fds:
            self._loop.remove_reader(fd)
        self._fds.clear()
        for sock in self._sockets.values():
            sock.close(linger=0)
        self._sockets.clear()
        # libzmq leaves bound ipc files behind; remove ours, not a successor's at the same path
        for path, inode in self._bound.items():
            try:
                if os.lstat(path).st_ino == inode:
                    os.unlink(path)
            except OSError:
                pass
        self._bound.clear()

    # -- sandbox -> host -----------------------------------------------------------------
    async def _from_stream(self) -> None:
        reader = self._reader
        try:
            if isinstance(reader, PushStreamReader):
                # chunks are relayed from the transport's callback; read() only sees the end
                buffered = reader.set_consumer(self._on_data)
                if buffered:
                    self._on_data(buffered)
            while data := await reader.read(1 << 18):
                self._on_data(data)
                await self._flowing.wait()  # a plain reader's backpressure: read no more for now
        except (ConnectionError, OSError) as e:
            log.info("kernel %s: stream error: %s", self.kernel_id, e)
        finally:
            if isinstance(reader, PushStreamReader):
                reader.set_consumer(None)
            self._stream_ended("stream closed")

    def _on_data(self, data: bytes) -> None:
        """Take what came from the sandbox; it is parsed and relayed in turns, within budget."""
        if not self._stream_open:
            return
        self._last_rx = self._loop.time()
        self._decoder.push(data)  # at most a read's worth waits here: reading stops while it does
        if self._pump_handle is None:
            self._pump()

    PER_TURN = 16  # messages parsed and relayed per event-loop turn (64 let a flood hold others up: bench_flood p99)

    def _pump(self) -> None:
        """Relay up to PER_TURN messages, charge them to the budget, and read on, or wait."""
        self._pump_handle = None
        if not self._stream_open:
            return
        if any(client.holding for client in self.direct_clients):
            self._throttle(True)  # an in-process reader is behind: it calls resume() when it caught up
            return
        now = self._loop.time()
        tokens, rates = self._tokens, self._rates
        if self._refilled:
            for i, rate in enumerate(rates):
                tokens[i] = min(4 * rate, tokens[i] + (now - self._refilled) * rate)
        self._refilled = now
        decoder = self._decoder
        try:
            messages = decoder.feed(b"", limit=self.PER_TURN)
        except RelayProtocolError as e:
            self._protocol_error(e)
            return
        # a skipped byte is neither copied nor parsed: it costs the budget a sixteenth
        charged = decoder.consumed - decoder.skipped + decoder.skipped // 16
        tokens[0] -= charged - self._charged
        self._charged = charged
        tokens[1] -= len(messages)
        self._relay(messages)
        if not decoder.partial:
            self._partial_since = None
        elif messages or self._partial_since is None:
            self._partial_since = (now, self._throttled_for())
        if not self._stream_open:
            return
        wait = max((-tokens[i] / rate if rate > 0 else 0.0) for i, rate in enumerate(rates))
        if wait > 0 or len(messages) == self.PER_TURN:
            self._throttle(True)
            if wait > 0:
                self._pump_handle = self._loop.call_later(wait, self._pump)
            else:
                self._pump_handle = self._loop.call_soon(self._pump)  # let others run first
        else:
            self._throttle(False)

    def _throttled_for(self) -> float:
        return self._throttled_total + (self._loop.time() - self._throttled_since if self._throttled else 0.0)

    def _throttle(self, on: bool) -> None:
        """Stop or resume reading the stream (the sandbox's writes then wait in its pipe)."""
        if on == self._throttled:
            return
        now = self._loop.time()
        self._throttled = on
        if on:
            self._throttled_since = now
            self._flowing.clear()
        else:
            self._throttled_total += now - self._throttled_since
            self._last_rx = now
            self._flowing.set()
        transport = getattr(self._reader, "_transport", None)  # asyncio's StreamReader keeps it there
        if isinstance(self._reader, PushStreamReader) and transport is not None and not transport.is_closing():
            if on:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _relay(self, messages: list[tuple[int, list[Any]]]) -> None:
        """Messages from the sandbox to the host sockets and the launcher's events."""
        sockets = self._sockets
        self._got_message = self._got_message or bool(messages)
        sent = 0
        key = self.key.encode()
        try:
            for kind, parts in messages:
                if kind == LAUNCHER:
                    self._tokens[2] -= 1
                    self._on_event(parts)
                elif parts:
                    if any(type(p) is Skipped for p in parts) or sum(len(p) for p in parts) > OUTPUT_CAP:
                        size = sum(p.size if type(p) is Skipped else len(p) for p in parts)
                        cut = cut_message(parts, key, kind == IOPUB)
                        self._log(
                            logging.WARNING,
                            "%s message of %d bytes %s",
                            CHANNELS[kind],
                            size,
                            "cut down" if cut else "dropped",
                        )
                        if cut is None:
                            continue
                        parts = cut
                    if kind != HB:
                        parts = self._outputs.frames(parts)  # what the sandbox shows, made inert
                        if not parts:
                            continue
                    if kind != HB and [c for c in self.direct_clients if c.deliver(kind, parts)]:
                        continue  # addressed to an in-process client (iopub goes to the sockets too)
                    # ROUTER and XPUB never block: a message to a gone client is dropped
                    sockets[kind].send_multipart(parts, NOBLOCK, copy=False)
                    sent |= 1 << kind
        except zmq.ZMQError as e:
            if not self._closed:
                log.error("kernel %s: relaying to a host socket failed: %s", self.kernel_id, e)
        for kind in CHANNELS:
            if sent & (1 << kind):
                # a send may have taken the edge of ZMQ_FD that announced incoming messages
                self._drain(kind)

    def _protocol_error(self, e: RelayProtocolError) -> None:
        if self._got_message:
            error = f"the sandbox broke the relay protocol: {e}"
        else:
            # nothing valid yet: most likely the engine saying why the launcher did not
            # start (e.g. "OCI runtime exec failed: ... executable file not found")
            text = bytes(self._decoder._buf[:300]).decode("utf-8", "replace").strip()
            error = f"the launcher did not start; the sandbox said: {text!r}"
        self._log(logging.ERROR, "closing its stream: %s", error)
        self._stream_ended("stream closed", error)
        self._writer.close()  # whatever it still sends is ignored

    def _on_event(self, parts: list[bytes]) -> None:
        # the largest real event carries a 64 KiB log: bigger ones are not parsed on the event loop
        try:
            valid = len(parts) == 1 and isinstance(parts[0], bytes) and len(parts[0]) <= MAX_EVENT_BYTES
            event = json.loads(parts[0]) if valid else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._log(logging.WARNING, "unreadable launcher event ignored")
            return
        # the sandbox writes these: keep only the shapes documented, sizes capped
        kind = event.get("event")
        if kind in ("started", "attached"):
            self.pid = _int_or_none(event.get("pid"))
            if not self.ready.done():
                self.ready.set_result({"event": kind, "pid": self.pid})
        elif kind == "exited":
            error = event.get("error")
            info = {
                "code": _int_or_none(event.get("code")),
                "signal": _int_or_none(event.get("signal")),
                "log": str(event.get("log") or "")[-LOG_CAP:],
                "error": printable(str(error), 2000) if error is not None else None,
                "reason": "exited",
            }
            if not self.ready.done():
                self.ready.set_result({"event": "exited"})
            if not self.exited.done():
                self.exited.set_result(info)
        elif kind == "pong":
            pass  # _on_data noted that the sandbox is alive
        elif kind == "log":
            if self._log_waiters:
                waiter = self._log_waiters.pop(0)
                if not waiter.done():
                    waiter.set_result(str(event.get("log") or "")[-LOG_CAP:])
        else:
            self._log(logging.WARNING, "launcher says %s", parts[0][:500].decode(errors="replace"))

    def _check_liveness(self) -> None:
        self._liveness = None
        if not self._stream_open:
            return
        if self._partial_since is not None:
            started, throttled = self._partial_since
            age = self._loop.time() - started - (self._throttled_for() - throttled)
            if age > self.partial_timeout:
                self._log(logging.ERROR, "closing its stream: %s", f"a message stayed unfinished for {age:.0f} s")
                self._stream_ended("stream closed", f"the sandbox left a message unfinished for {age:.0f} s")
                self._writer.close()
                return
        if self._throttled:  # we are not reading: the sandbox is not quiet
            self._last_rx = self._loop.time()
        quiet = self._loop.time() - self._last_rx
        if quiet >= self.liveness_timeout:
            log.error("kernel %s: nothing from the sandbox for %.0f s, closing its stream", self.kernel_id, quiet)
            self._stream_ended("stream closed", f"the sandbox sent nothing for {quiet:.0f} s (is its container gone?)")
            self._writer.close()
            return
        if quiet >= self.liveness_timeout / 3:
            self._op("ping")
        self._liveness = self._loop.call_later(self.liveness_timeout / 3, self._check_liveness)

    def _stream_ended(self, reason: str, error: str | None = None) -> None:
        self._stream_open = False
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None
        self._throttle(False)  # read to the end (what comes is ignored): a paused pipe never closes
        if self._liveness is not None:
            self._liveness.cancel()
            self._liveness = None
        if not self.exited.done():
            self.exited.set_result({"code": None, "signal": None, "log": "", "error": error, "reason": reason})
        if not self.ready.done():
            self.ready.set_result({"event": "closed"})
        for waiter in self._log_waiters:
            if not waiter.done():
                waiter.set_exception(KernelRelayError("the stream to the launcher closed"))
        self._log_waiters.clear()

    # -- host -> sandbox -----------------------------------------------------------------
    def _drain(self, kind: int) -> None:
        """Send every message waiting on a host socket to the sandbox, in one write."""
        sock = self._sockets.get(kind)
        if sock is None or self._paused:
            return
        more = False  # stopped early: the edge is spent, so come back without one
        try:
            for _ in range(256):
                if not int(sock.getsockopt(EVENTS)) & POLLIN:
                    break
                parts = sock.recv_multipart(NOBLOCK)
                if kind == IOPUB and parts[0][:1] == b"\x00":
                    # An unsubscription: one client left, but others may still listen (a server
                    # closing its old iopub socket after a kernel restart unsubscribes after its
                    # new one subscribed). The sandbox stays subscribed to everything.
                    continue
                self._queue(kind, parts)
                if self._out_size > self._write_buffer_limit:
                    more = True
                    break
            else:
                more = True
        except zmq.ZMQError as e:
            if not self._closed:
                log.error("kernel %s: %s socket failed: %s", self.kernel_id, CHANNELS[kind], e)
        self._flush()
        if self._stream_open and self._writer.transport.get_write_buffer_size() > self._write_buffer_limit:
            self._pause()  # its resume drains every socket
        elif more:
            self._loop.call_soon(self._drain, kind)  # let the others run first

    def _pause(self) -> None:
        # the sandbox reads slowly: leave messages in ZMQ's queues until the stream drains
        if self._paused:
            return
        self._paused = True

        async def resume() -> None:
            try:
                await self._writer.drain()
            except (ConnectionError, OSError):
                return
            self._paused = False
            for kind in list(self._sockets):
                self._drain(kind)

        self._tasks.append(asyncio.ensure_future(resume()))

    def send(self, kind: int, parts: list[bytes]) -> None:
        """A message of an in-process client (kernel_channels.py) to the sandbox, as from a socket."""
        self._queue(kind, parts)
        self._flush()

    def resume(self) -> None:
        """An in-process reader caught up: parse and read the stream on."""
        if self._pump_handle is None and self._stream_open:
            self._pump_handle = self._loop.call_soon(self._pump)

    def _queue(self, kind: int, parts: list[bytes]) -> None:
        out = self._out
        out.append(_HEAD.pack(kind, len(parts)))
        size = self._out_size
        for p in parts:
            out.append(_LEN.pack(len(p)))
            out.append(p)
            size += len(p)
        self._out_size = size

    def _flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        if self._stream_open and not self._writer.is_closing():
            self._writer.write(data)


# -- streams -------------------------------------------------------------------------------
@dataclass
class ExecStream:
    """A launcher's stdin/stdout as asyncio streams, and how to wait for its exit code."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    wait: Callable[[], Awaitable[int | None]]
    exec_id: str | None = None
    process: asyncio.subprocess.Process | None = None


class _StderrLog:
    """The launcher's stderr into the logger, line by line, at most STDERR_CAP bytes."""

    LINE = 4096  # a longer line is logged in pieces

    def __init__(self, name: str):
        self.name = name
        self.pending = bytearray()
        self.logged = 0

    def feed(self, data: bytes) -> None:
        room = STDERR_CAP - self.logged
        if room <= 0:
            return
        self.pending += data[: room + self.LINE]  # never keep more than can still be logged
        pending, start = self.pending, 0
        while self.logged < STDERR_CAP:
            end = pending.find(b"\n", start, start + self.LINE)
            if end < 0:
                if len(pending) - start < self.LINE:
                    break
                end = start + self.LINE
                self._emit(pending[start:end])
                start = end
            else:
                self._emit(pending[start:end])
                start = end + 1
        del pending[:start]
        if self.logged >= STDERR_CAP:
            log.warning("%s: further stderr output dropped", self.name)
            pending.clear()

    def _emit(self, line: bytes | bytearray) -> None:
        self.logged += max(len(line) + 1, 512)  # short lines count more: at most 128 lines per stream
        log.warning("%s: %s", self.name, printable(line.decode("utf-8", "replace"), self.LINE))

    def close(self) -> None:
        if self.pending and self.logged < STDERR_CAP:
            self._emit(self.pending)
        self.pending.clear()


class _LauncherProcessProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """What create_subprocess_exec uses, with a PushStreamReader for stdout and stderr
    going straight to the log."""

    def __init__(self, on_stderr: Callable[[bytes], None]):
        super().__init__(limit=1 << 18, loop=asyncio.get_running_loop())
        self._on_stderr = on_stderr

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.stdout = PushStreamReader(limit=1 << 18)
        self.stdout.set_transport(transport.get_pipe_transport(1))  # type: ignore[attr-defined]

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 2 and isinstance(data, bytes):
            self._on_stderr(data)
        else:
            super().pipe_data_received(fd, data)


async def open_subprocess_launcher(
    mode: str, *, python: str = sys.executable, env: dict[str, str] | None = None, cwd: str | None = None
) -> ExecStream:
    """Run the launcher as a local subprocess (tests, and the local backend)."""
    loop = asyncio.get_running_loop()
    stderr: _StderrLog | None = None

    def on_stderr(data: bytes) -> None:
        assert stderr is not None
        stderr.feed(data)

    pipe = asyncio.subprocess.PIPE
    transport, protocol = await loop.subprocess_exec(
        lambda: _LauncherProcessProtocol(on_stderr),
        *launcher_command(mode, python),
        stdin=pipe,
        stdout=pipe,
        stderr=pipe,
        env=env,
        cwd=cwd,
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    stderr = _StderrLog(f"launcher pid {proc.pid}")

    async def wait() -> int:
        code = await proc.wait()
        stderr.close()
        return code

    assert proc.stdin is not None and proc.stdout is not None
    return ExecStream(proc.stdout, proc.stdin, wait, process=proc)


class PushStreamReader(asyncio.StreamReader):
    """A StreamReader that can hand each chunk to a consumer as the transport delivers it.

    KernelRelay uses that to relay in the transport's callback instead of waking a task per
    chunk (fewer event-loop turns per message); read() then only reports the end."""

    _consumer: Callable[[bytes], None] | None = None

    def set_consumer(self, consumer: Callable[[bytes], None] | None) -> bytes:
        """Route further data to ``consumer`` (None: back to read()); returns what was buffered."""
        self._consumer = consumer
        if consumer is None:
            return b""
        # the base class's buffer (private to asyncio, long stable): data fed before this call
        buffered = bytes(self._buffer)  # type: ignore[attr-defined]
        self._buffer.clear()  # type: ignore[attr-defined]
        return buffered

    def feed_data(self, data: bytes | memoryview) -> None:  # type: ignore[override]
        if self._consumer is not None:
            if data:
                self._consumer(bytes(data) if isinstance(data, memoryview) else data)
        else:
            super().feed_data(data)


class DockerExecReader(PushStreamReader):
    """The stdout of a Docker exec without a tty: Docker multiplexes stdout and stderr into
    frames of an 8-byte header (stream, 0, 0, 0, size u32be) and the payload. Stdout goes to
    this reader; stderr to ``on_stderr``."""

    def __init__(self, on_stderr: Callable[[bytes], None], limit: int = 1 << 18):
        super().__init__(limit=limit)
        self._on_stderr = on_stderr
        self._head = bytearray()
        self._stream = 0
        self._left = 0

    def feed_data(self, data: bytes | memoryview) -> None:  # type: ignore[override]
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if not self._left:
                need = 8 - len(self._head)
                self._head += view[i : i + need]
                i += need
                if len(self._head) < 8:
                    break
                self._stream = self._head[0]
                self._left = int.from_bytes(self._head[4:8], "big")
                self._head.clear()
                continue
            take = min(self._left, n - i)
            if self._stream == 1:
                super().feed_data(view[i : i + take])
            elif self._stream == 2:
                self._on_stderr(bytes(view[i : i + take]))
            self._left -= take
            i += take


async def open_docker_exec(
    api: Any,
    container: str,
    mode: str,
    *,
    user: str = "",
    python: str = "python",
    environment: dict[str, str] | None = None,
    workdir: str | None = None,
    run: Callable[[Callable[[], Any]], Awaitable[Any]] = asyncio.to_thread,
) -> ExecStream:
    """Start the launcher with ``docker exec -i`` (no tty) and return its streams.

    ``api`` is docker-py's low-level client (``docker.DockerClient().api``). The exec's
    hijacked socket is taken over by the event loop; works with the engine's unix socket
    or plain TCP (not TLS). ``run`` runs the blocking engine calls (the caller's own thread
    pool, say).
    """
    command = launcher_command(mode, python)

    def create() -> tuple[str, socket.socket]:
        exec_id = api.exec_create(
            container,
            command,
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=user,
            environment=environment,
            workdir=workdir,
        )["Id"]
        hijacked = api.exec_start(exec_id, socket=True, tty=False)
        raw = getattr(hijacked, "_sock", hijacked)
        try:
            if not isinstance(raw, socket.socket) or isinstance(raw, ssl.SSLSocket):
                raise KernelRelayError(
                    f"the Docker engine's connection ({type(raw).__name__}) cannot be driven by asyncio; "
                    "use its unix socket or plain TCP"
                )
            # our own descriptor: docker-py's wrappers can be closed (or collected) freely
            return exec_id, raw.dup()
        finally:
            hijacked.close()
            if raw is not hijacked:
                raw.close()

    exec_id, sock = await run(create)
    loop = asyncio.get_running_loop()
    stderr = _StderrLog(f"launcher exec {exec_id[:12]}")
    reader = DockerExecReader(stderr.feed)
    try:
        transport, protocol = await loop.create_connection(lambda: asyncio.StreamReaderProtocol(reader), sock=sock)
    except BaseException:
        sock.close()
        raise
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)

    async def wait() -> int | None:
        """The launcher's exit code once the exec has ended; None if it went with its container."""
        import docker.errors

        while True:
            try:
                state = await run(lambda: api.exec_inspect(exec_id))
            except docker.errors.NotFound:
                state = {"Running": False, "ExitCode": None}
            if not state.get("Running"):
                stderr.close()
                return state.get("ExitCode")
            await asyncio.sleep(0.2)

    return ExecStream(reader, writer, wait, exec_id=exec_id)
