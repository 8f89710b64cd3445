"""Host side of the kernel relay: a kernel's ZMQ sockets served over one byte stream.

The kernel runs in the sandbox under ``programs/launcher.py`` (see its docstring for the
launcher's request, events and ops); both ends speak the frames of ``programs/frames.py``,
shipped with the launcher (:func:`launcher_source`). What the link may cost is
``link_budget.py``'s, the launcher's events ``launcher_events.py``'s. Here, :class:`KernelRelay` binds the
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
import json
import logging
import os
import re
import socket
import ssl
import stat
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import zmq

from ..outputs import DEFAULT as DEFAULT_OUTPUTS
from ..outputs import OutputPolicy
from . import programs
from .launcher_events import LauncherEvents
from .link_budget import LinkBudget
from .programs.frames import (
    CONTROL,
    HB,
    IOPUB,
    LAUNCHER,
    OUTPUT_CAP,
    SHELL,
    STDIN,
    FrameDecoder,
    FrameError,
    Skipped,
    cut_message,
    encode,
)
from .running_cells import RunningCells
from .sandbox_text import LogBudget, printable

if TYPE_CHECKING:
    from .kernel_channels import DirectKernelClient

log = logging.getLogger(__name__)

CHANNELS = {SHELL: "shell", IOPUB: "iopub", STDIN: "stdin", CONTROL: "control", HB: "hb"}
PORTS = {SHELL: 1, IOPUB: 2, STDIN: 3, CONTROL: 4, HB: 5}  # ipc "ports" are path suffixes
SHIPPED_FRAMES_MODULE = "jsbx_frames"  # the name launcher.py imports programs/frames.py by in a sandbox
DEFAULT_STATE_DIR = "/tmp/.jsbx"  # in the sandbox: its own tmpfs, made 0700 by the launcher
KERNEL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")  # the launcher's rule too
MAX_UNIX_PATH = 107
STDERR_CAP = 64 * 1024  # launcher stderr bytes logged per stream
LOG_CAP = 64 * 1024  # characters of kernel log accepted from the launcher (it keeps 64 KiB)
MAX_EVENT_BYTES = 1 << 20  # a launcher event (JSON); the largest real one holds LOG_CAP of log

NOBLOCK, EVENTS, POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)  # ints: no enum arithmetic
NOBLOCK_MORE = NOBLOCK | int(zmq.SNDMORE)
COPY_BELOW = 1 << 16  # a smaller part is copied into its ZMQ message (cheaper than tracking a zero-copy one)


class KernelRelayError(Exception):
    """The relay cannot do what was asked (bad arguments, launcher gone, no answer)."""


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
# ``python -I -c`` takes one program: this one registers the frame codec as the module the
# launcher imports when it is not in the package, then runs the launcher as __main__. Each keeps
# its own file name in tracebacks.
_LAUNCHER_BOOTSTRAP = """import sys, types
frames = types.ModuleType({module!r})
sys.modules[frames.__name__] = frames
exec(compile({frames}, "frames.py", "exec"), frames.__dict__)
del frames
exec(compile({launcher}, "launcher.py", "exec"), {{"__name__": "__main__"}})
"""


@functools.cache
def _without_docstring(source: str) -> str:
    """A module's source with its docstring's lines left empty: shorter on the command line (an
    engine's error about a command that cannot run quotes all of it), same line numbers."""
    if not source.startswith('"""'):
        return source
    end = source.index('"""', 3) + 3
    return "\n" * source.count("\n", 0, end) + source[end:]


def launcher_source() -> str:
    """What runs the launcher with ``python -I -c``: programs/frames.py and programs/launcher.py."""
    frames, launcher = (_without_docstring(programs.source(name)) for name in ("frames", "launcher"))
    return _LAUNCHER_BOOTSTRAP.format(module=SHIPPED_FRAMES_MODULE, frames=repr(frames), launcher=repr(launcher))


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
    transport: str = "ipc",
) -> dict[str, Any]:
    """The ``start`` request: ``{connection_file}`` in argv becomes the file's path in the sandbox.
    ``transport`` "tcp": the kernel listens on 127.0.0.1 ports instead of ipc sockets."""
    return {
        "transport": transport,
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


def _check_request(request: dict[str, Any], kernel_id: str, key: str) -> None:
    if request.get("kernel_id") != kernel_id:
        raise ValueError("the request is for another kernel id")
    connection = request.get("connection")
    if connection is not None and _key_text(connection.get("key", "")) != key:
        raise ValueError("the request's key is not this relay's key")


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


def bind_kernel_sockets(
    context: zmq.Context[zmq.Socket[bytes]], ip: str, sockets: dict[int, zmq.Socket[bytes]], bound: dict[str, int]
) -> None:
    """Bind the five sockets a kernel binds at ``{ip}-{port}`` into ``sockets``, noting each
    socket file's inode in ``bound``; on failure, close what was bound and raise KernelRelayError."""
    types = {SHELL: zmq.ROUTER, IOPUB: zmq.XPUB, STDIN: zmq.ROUTER, CONTROL: zmq.ROUTER, HB: zmq.ROUTER}
    try:
        for kind, socktype in types.items():
            sock = zmq.Socket(context, socktype)  # plain, even from an asyncio context
            sock.linger = 0
            if socktype == zmq.XPUB:
                # pass every (un)subscription on, so the kernel sees each client's
                # subscription and a second client still gets its iopub_welcome
                sock.setsockopt(zmq.XPUB_VERBOSER, 1)
            sockets[kind] = sock
            path = f"{ip}-{PORTS[kind]}"
            sock.bind(f"ipc://{path}")
            bound[path] = os.lstat(path).st_ino
    except zmq.ZMQError as e:
        close_kernel_sockets(sockets, bound)
        raise KernelRelayError(f"cannot bind the kernel sockets in {os.path.dirname(ip)}: {e}") from e


def close_kernel_sockets(sockets: dict[int, zmq.Socket[bytes]], bound: dict[str, int]) -> None:
    for sock in sockets.values():
        sock.close(linger=0)
    sockets.clear()
    # libzmq leaves bound ipc files behind; remove ours, not a successor's at the same path
    for path, inode in bound.items():
        try:
            if os.lstat(path).st_ino == inode:
                os.unlink(path)
        except OSError:
            pass
    bound.clear()


def send_parts(sock: zmq.Socket[bytes], parts: list[bytes]) -> None:
    """``sock.send_multipart(parts, NOBLOCK)`` at a third of its cost (pyzmq's combines its flags as
    enums, per part): the relay sends each iopub message to the sockets, read or not."""
    send = sock.send
    last = len(parts) - 1
    for i, part in enumerate(parts):
        send(part, NOBLOCK_MORE if i < last else NOBLOCK, copy=len(part) < COPY_BELOW)


def fitted_on_host(kind: int, parts: list[Any], key: bytes, log: LogBudget) -> list[list[bytes]]:
    """A message from the sandbox as it goes on: over OUTPUT_CAP (or with Skipped parts), made to
    fit here too, the sandbox being untrusted (a stream in pieces, others cut down or dropped)."""
    if not any(type(p) is Skipped for p in parts) and sum(len(p) for p in parts) <= OUTPUT_CAP:
        return [parts]
    size = sum(p.size if type(p) is Skipped else len(p) for p in parts)
    fitted = cut_message(parts, key, kind == IOPUB)
    outcome = f"split in {len(fitted)}" if len(fitted) > 1 else "cut down" if fitted else "dropped"
    log(logging.WARNING, "%s message of %d bytes %s", CHANNELS[kind], size, outcome)
    return fitted


def ipc_connection_info(ip: str, key: str) -> dict[str, Any]:
    """A connection file's fields for the relay's sockets at ``ip`` (their path prefix)."""
    ports = {f"{CHANNELS[kind]}_port": port for kind, port in PORTS.items()}
    return {"transport": "ipc", "ip": ip, **ports, "key": key, "signature_scheme": "hmac-sha256", "kernel_name": ""}


def protocol_error_text(e: FrameError, got_message: bool, buffered: bytes) -> str:
    if got_message:
        return f"the sandbox broke the relay protocol: {e}"
    # nothing valid yet: most likely the engine saying why the launcher did not start
    # (e.g. "OCI runtime exec failed: ... executable file not found")
    text = buffered.decode("utf-8", "replace").strip()
    return f"the launcher did not start; the sandbox said: {text!r}"


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
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
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
        # What the sandbox may cost per second: over it, the stream is not read until the
        # budget is back, so a flood waits in the sandbox.
        self._budget = LinkBudget(bytes_per_second, messages_per_second, events_per_second)
        self._pump_handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        # a message begun and not ended: bounded in memory by the decoder, in time by this
        self.partial_timeout = partial_timeout
        self._partial_since: tuple[float, float] | None = None
        self._log = LogBudget(f"kernel {kernel_id}", log)
        self._write_buffer_limit = write_buffer_limit
        # An engine may keep an exec stream open after the sandbox died (seen with runsc):
        # a stream quiet for this long is pinged, and silent for this long is dead.
        self.liveness_timeout = liveness_timeout
        self._last_rx = 0.0
        self._liveness: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._sockets: dict[int, zmq.Socket[bytes]] = {}
        self._fds: list[int] = []
        self._paused = False  # the stream's write buffer is full: ZMQ queues hold the rest
        self._bound: dict[str, int] = {}  # socket file -> inode
        self._tasks: list[asyncio.Task[None]] = []
        self._out: list[bytes] = []
        self._out_size = 0
        self._closed = False
        self._stream_open = False
        self._got_message = False
        self._events = LauncherEvents(self._loop, self._log)
        self.ready = self._events.ready  # the launcher's started/attached (or exited, or closed) event
        self.exited = self._events.exited
        self.direct_clients: list[DirectKernelClient] = []  # in-process readers (kernel_channels.py)
        self.cells = RunningCells(self.key, self._sockets)  # the socket clients' unanswered cells

    @property
    def pid(self) -> int | None:
        """The kernel's pid in the sandbox, as the launcher reported it."""
        return self._events.pid

    @property
    def connection_info(self) -> dict[str, Any]:
        return ipc_connection_info(self.ip, self.key)

    async def start(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Bind the sockets, send ``request`` (the launcher's first line) if given, start relaying;
        the connection info for ``jupyter_client`` (``load_connection_info``)."""
        if self._tasks or self._closed:
            raise KernelRelayError("this relay was already started")
        if request is not None:
            _check_request(request, self.kernel_id, self.key)
        _check_private_dir(self.socket_dir)
        bind_kernel_sockets(self._context, self.ip, self._sockets, self._bound)
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
    def send_op(self, op: str) -> None:
        if not self._stream_open:
            raise KernelRelayError("the stream to the launcher is closed")
        self._queue(LAUNCHER, [json.dumps({"op": op}).encode()])
        self._flush()

    async def stop_kernel(self, timeout: float = 10) -> dict[str, Any]:
        """SIGKILL the kernel's process group; returns the exit info once the launcher reports it."""
        if not self.exited.done():
            self.cells.clear()  # asked for (a restart, a shutdown): no cell is told the kernel died
            self.send_op("stop")
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), timeout)
        except asyncio.TimeoutError:
            raise KernelRelayError(f"the launcher did not report the kernel's exit within {timeout} s") from None

    async def interrupt_kernel(self) -> None:
        """SIGINT to the kernel's process group (for kernels with interrupt_mode 'signal')."""
        self.send_op("interrupt")

    async def log(self, timeout: float = 10) -> str:
        """The tail (<= 64 KiB) of the kernel's stdout+stderr; after the end, the tail sent with the exit."""
        if not self._stream_open:
            return self.exited.result()["log"] if self.exited.done() else ""
        waiter = self._events.log_waiter()
        self.send_op("log")
        try:
            return await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise KernelRelayError(f"the launcher did not answer with the log within {timeout} s") from None
        finally:
            self._events.forget(waiter)

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
        close_kernel_sockets(self._sockets, self._bound)

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
        self._budget.refill(now)
        decoder = self._decoder
        try:
            messages = decoder.feed(b"", limit=self.PER_TURN)
        except FrameError as e:
            self._protocol_error(e)
            return
        self._budget.charge(decoder.consumed, decoder.skipped, len(messages))
        self._relay(messages)
        if not decoder.partial:
            self._partial_since = None
        elif messages or self._partial_since is None:
            self._partial_since = (now, self._budget.throttled_for(now))
        if not self._stream_open:
            return
        wait = self._budget.wait()
        if wait > 0 or len(messages) == self.PER_TURN:
            self._throttle(True)
            if wait > 0:
                self._pump_handle = self._loop.call_later(wait, self._pump)
            else:
                self._pump_handle = self._loop.call_soon(self._pump)  # let others run first
        else:
            self._throttle(False)

    def _throttle(self, on: bool) -> None:
        """Stop or resume reading the stream (the sandbox's writes then wait in its pipe)."""
        now = self._loop.time()
        if not self._budget.set_throttled(on, now):
            return
        if on:
            self._flowing.clear()
        else:
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
                    self._budget.charge_event()
                    self._events.on_event(parts)
                elif parts:
                    for frames in fitted_on_host(kind, parts, key, self._log):
                        if kind != HB:
                            frames = self._outputs.frames(frames)  # what the sandbox shows, made inert
                            if not frames:
                                continue
                        if kind != HB and [c for c in self.direct_clients if c.deliver(kind, frames)]:
                            continue  # addressed to an in-process client (iopub goes to the sockets too)
                        self.cells.replied(kind, frames)
                        # ROUTER and XPUB never block: a message to a gone client is dropped
                        send_parts(sockets[kind], frames)
                        sent |= 1 << kind
        except zmq.ZMQError as e:
            if not self._closed:
                log.error("kernel %s: relaying to a host socket failed: %s", self.kernel_id, e)
        for kind in CHANNELS:
            if sent & (1 << kind):
                # a send may have taken the edge of ZMQ_FD that announced incoming messages
                self._drain(kind)

    def _protocol_error(self, e: FrameError) -> None:
        error = protocol_error_text(e, self._got_message, self._decoder.buffered)
        self._log(logging.ERROR, "closing its stream: %s", error)
        self._stream_ended("stream closed", error)
        self._writer.close()  # whatever it still sends is ignored

    def _check_liveness(self) -> None:
        self._liveness = None
        if not self._stream_open:
            return
        if self._partial_since is not None:
            started, throttled = self._partial_since
            now = self._loop.time()
            age = now - started - (self._budget.throttled_for(now) - throttled)
            if age > self.partial_timeout:
                self._log(logging.ERROR, "closing its stream: %s", f"a message stayed unfinished for {age:.0f} s")
                self._stream_ended("stream closed", f"the sandbox left a message unfinished for {age:.0f} s")
                self._writer.close()
                return
        if self._budget.throttled:  # we are not reading: the sandbox is not quiet
            self._last_rx = self._loop.time()
        quiet = self._loop.time() - self._last_rx
        if quiet >= self.liveness_timeout:
            log.error("kernel %s: nothing from the sandbox for %.0f s, closing its stream", self.kernel_id, quiet)
            self._stream_ended("stream closed", f"the sandbox sent nothing for {quiet:.0f} s (is its container gone?)")
            self._writer.close()
            return
        if quiet >= self.liveness_timeout / 3:
            self.send_op("ping")
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
        self._events.link_ended(reason, error, KernelRelayError("the stream to the launcher closed"))

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
                self.cells.sent(kind, parts)
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
        encode(kind, parts, self._out)
        self._out_size += sum(len(p) for p in parts)

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
                code = state.get("ExitCode")
                return code if isinstance(code, int) else None
            await asyncio.sleep(0.2)

    return ExecStream(reader, writer, wait, exec_id=exec_id)
