"""Kernel launcher and relay that runs INSIDE a sandbox; its stdin/stdout are the only link.

Started by the server through the engine's exec stream (``docker exec -i``, later
``kubectl exec``) as ``python -I -c <this source> start|attach``, with no tty. Standard
library only, Python 3.8+ (3.9+ when it changes users): it speaks ZMTP 3.0 to the kernel's
sockets itself (no libzmq I/O thread per hop, which costs dearly under gVisor). It must
not import anything from jupyter_sandbox: it is shipped as source text and runs in the
sandbox's Python.

Whose it is: the kernel runs code the sandbox's user wrote, and this process's stdout is the
link to the server, so the two must not share a uid (same uid: the code could open
``/proc/<launcher>/fd/1`` and write frames into the link, SIGSTOP or ptrace this process).
When the request names ``kernel_user`` and ``launcher_user`` ("uid:gid"), the launcher is
run as root in a container whose only capabilities are SETUID, SETGID and KILL, and:

- takes the launcher's uid and gid at once (keeping those three capabilities; none is held
  by a uid-1000 process: the container's own processes run as root, its other execs drop
  to the sandbox's user before they run anything, and no-new-privileges stops any regain),
  becomes non-dumpable (its /proc files are root's), and installs a seccomp filter that
  denies ptrace and io_uring_* to itself and the kernel (gVisor ignores the engine's
  seccomp profile: this is the one that holds there);
- starts the kernel as ``kernel_user`` with no supplementary groups and umask 002, in its
  own session, then keeps only CAP_KILL (to interrupt and stop it: a signal to another uid
  needs it). The kernel's sockets are in ``<state_dir>/ipc`` (the kernel's group may write
  there; the launcher is in that group, which is how it connects); the launcher's own
  files (pid, exit record, log) are in ``<state_dir>``, mode 0600, which the kernel can
  pass through but not read or list.

Why root and capabilities rather than ``docker exec --user <launcher uid>``: only the
kernel's parent sees its exit status, and starting a process as another uid needs
CAP_SETUID. Why a container user of root: the engine gives an exec the container's
capability sets, and a container whose user is not root has none in effect, even for a
root exec. Without those request fields (the local backend) the launcher runs as it was
started, with everything in one uid.

Why: the kernel's ZMQ sockets stay inside the sandbox (ipc sockets in a private state
dir on the sandbox's own tmpfs). No host path is mounted into the sandbox, so there is no
file the sandbox could turn into a symlink, a FIFO or a disk filler for the host.

Wire format (both directions, on the byte stream after the first line): frames.py, the codec
this launcher shares with the server's relay (shipped with this source; see
``kernel_relay.launcher_source``). An iopub message over 8 MiB is made to fit there
(``frames.cut_message``): a stream goes on in pieces, a huge display is replaced by a note.

kinds: 0 shell, 1 iopub, 2 stdin, 3 control, 4 hb -- the parts are the raw ZMQ multipart
frames, routing identities included, so a ROUTER (host) - DEALER (here) - ROUTER (kernel)
chain serves several clients (this side connects to the kernel as a DEALER, and as a SUB
on iopub). On iopub the host sends the XPUB subscription frames
(``\\x01topic`` / ``\\x00topic``) and this side sends the kernel's published messages.
kind 255: launcher control, exactly one part holding a JSON object: ``{"op": ...}`` from
the server, ``{"event": ...}`` from the launcher.

Before the binary stream the server writes ONE line of JSON (the request):

- mode ``start``: ``{"kernel_id", "connection": {"key", "signature_scheme", ...},
  "argv": [...] with "{connection_file}" (or "{file}") where the file's path goes, "cwd",
  "env" (added to the exec's environment), "state_dir", "kernel_user", "launcher_user",
  "transport"}``.
  Writes ``<state_dir>/ipc/k-<id>.json`` (0600, or 0640 for the kernel's group; transport
  ipc, sockets in the same folder; with ``"transport": "tcp"``, for kernels that cannot listen
  on ipc sockets (Deno's), five free ports on 127.0.0.1 of the sandbox),
  starts the kernel in its own session with stdout+stderr into a size-capped log
  (``k-<id>.log`` + ``k-<id>.log.1``, at most 2 x 64 KiB), records its pid in
  ``k-<id>.pid``, sends ``started`` and relays. When the kernel exits it writes
  ``k-<id>.exit``, sends ``exited`` and ends. When stdin ends (the server went away) it
  stops relaying but keeps waiting for the kernel, which it never kills for that reason:
  the kernel and its state survive for a later ``attach``.
- mode ``attach``: ``{"kernel_id", "state_dir", "kernel_user", "launcher_user"}``. Relays to the running kernel and sends
  ``attached``, or sends ``exited`` from the exit record when the kernel is gone; it
  watches the kernel's pid and reports its death.

Events: ``{"event": "started"|"attached", "pid"}`` once the kernel's five sockets have
completed their handshakes (the kernel is listening; traffic sent earlier is queued); ``{"event": "exited", "code",
"signal", "log", "error"}`` (code is the exit status or null when a signal killed it;
error is a message when the kernel could not be started or vanished without a record);
``{"event": "log", "log"}`` answering ``{"op": "log"}``; ``{"event": "pong"}`` answering
``{"op": "ping"}`` (the server's liveness check when the stream is quiet). Other ops:
``{"op": "stop"}`` SIGKILLs the kernel's process group, ``{"op": "interrupt"}`` sends it
SIGINT, ``{"op": "detach"}`` ends this launcher and leaves the kernel running (before a
checkpoint of the sandbox, which cannot keep the exec's stream: docs/pause.md).
"""

import ctypes
import errno
import json
import os
import pwd
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

try:  # imported from the package (tests, linting)
    from . import frames
except ImportError:  # shipped as `python -I -c`: kernel_relay.launcher_source() registered the codec first
    import jsbx_frames as frames

CONTROL, HB, IOPUB, LAUNCHER, SHELL, STDIN = (
    frames.CONTROL,
    frames.HB,
    frames.IOPUB,
    frames.LAUNCHER,
    frames.SHELL,
    frames.STDIN,
)
OUTPUT_CAP, FrameDecoder, FrameError = frames.OUTPUT_CAP, frames.FrameDecoder, frames.FrameError
cut_message, encode = frames.cut_message, frames.encode

LOG_CAP = 64 * 1024  # bytes kept per log file; two files at most
EXIT_LOG = 8 * 1024  # log tail carried by the exited event
MAX_REQUEST = 1 << 20
MAX_MESSAGE = 256 << 20
CHECK_INTERVAL = 0.5  # attach mode: seconds between looks at the kernel's pid
SAFETY_INTERVAL = 5.0  # start mode: SIGCHLD wakes us; this only guards against a lost one
KERNEL_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def warn(text):
    """A line on stderr, which the server logs; never fatal (the server may be gone)."""
    try:
        sys.stderr.write(f"launcher: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def event(out, **fields):
    encode(LAUNCHER, [json.dumps(fields).encode()], out)
    return out


class Output:
    """Our stdout, the way back to the server. Blocking writes: the server always reads."""

    def __init__(self, fd):
        self.fd = fd
        self.closed = False

    def write(self, chunks):
        """Write chunks in order: small ones joined, a big one (a piece of a text) as it is."""
        if self.closed or not chunks:
            return
        small = []
        try:
            for chunk in chunks:
                if len(chunk) < 1 << 16:
                    small.append(chunk)
                    continue
                if small:
                    self.write_all(b"".join(small))
                    small = []
                self.write_all(chunk)
            if small:
                self.write_all(b"".join(small))
        except OSError:  # the server went away: nobody to tell
            self.close()

    def write_all(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                os.close(self.fd)
            except OSError:
                pass


# -- users: the launcher and the kernel never share a uid (see the docstring)
PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 4, 8, 22, 2
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
KERNEL_UMASK = 0o002  # its sockets are group-writable: the launcher connects as a member of its group

# The seccomp filter, classic BPF over struct seccomp_data (nr at offset 0, arch at 4): EPERM
# for ptrace (its number differs per arch) and io_uring_setup/_enter/_register (425-427 on
# every arch; x32 sets bit 30), everything else allowed. (op, jump if true, if false, k)
_LD, _JA, _JEQ, _JGE, _AND, _RET = 0x20, 0x05, 0x15, 0x35, 0x54, 0x06
_X86_64, _AARCH64, _I386 = 0xC000003E, 0xC00000B7, 0x40000003
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | errno.EPERM
FILTER = [
    (_LD, 0, 0, 4),  # 0: A = arch
    (_JEQ, 4, 0, _X86_64),  # 1: -> 6
    (_JEQ, 5, 0, _AARCH64),  # 2: -> 8
    (_JEQ, 6, 0, _I386),  # 3: -> 10
    (_LD, 0, 0, 0),  # 4: another arch: A = nr
    (_JA, 0, 0, 6),  # 5: -> 12
    (_LD, 0, 0, 0),  # 6: x86_64
    (_JEQ, 7, 4, 101),  # 7: ptrace -> 15, else 12
    (_LD, 0, 0, 0),  # 8: aarch64
    (_JEQ, 5, 2, 117),  # 9: ptrace -> 15, else 12
    (_LD, 0, 0, 0),  # 10: i386
    (_JEQ, 3, 0, 26),  # 11: ptrace -> 15, else 12
    (_AND, 0, 0, 0xBFFFFFFF),  # 12: without x32's bit
    (_JGE, 0, 2, 425),  # 13: below io_uring_setup -> 16
    (_JGE, 1, 0, 428),  # 14: above io_uring_register -> 16, else 15
    (_RET, 0, 0, _DENY),  # 15
    (_RET, 0, 0, _ALLOW),  # 16
]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def parse_user(value, field):
    uid, _, gid = str(value).partition(":")
    try:
        ids = int(uid), int(gid or uid)
    except ValueError:
        raise ValueError(f"{field} must be 'uid:gid', not {value!r}") from None
    if min(ids) <= 0:
        raise ValueError(f"{field} must not be root")
    return ids


def users_of(request):
    """((kernel uid, gid), (launcher uid, gid)) from the request, or None: one user for both."""
    kernel, launcher = request.get("kernel_user"), request.get("launcher_user")
    if not kernel and not launcher:
        return None
    kernel, launcher = parse_user(kernel, "kernel_user"), parse_user(launcher, "launcher_user")
    if kernel[0] == launcher[0]:
        raise ValueError("kernel_user and launcher_user must be different uids")
    return kernel, launcher


def _checked(libc, result, what):
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def keep_capabilities(*caps):
    """Permitted and effective capabilities become exactly these (never more than we hold)."""
    libc = ctypes.CDLL(None, use_errno=True)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = sum(1 << cap for cap in caps)
    _checked(libc, libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data), "capset")


def become_launcher(users, start):
    """From root: the launcher's uid and gid, in the kernel's group, non-dumpable, filtered,
    keeping CAP_KILL (and for ``start`` CAP_SETUID and CAP_SETGID, until the kernel runs)."""
    (_, kernel_gid), (uid, gid) = users
    libc = ctypes.CDLL(None, use_errno=True)
    _checked(libc, libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "PR_SET_KEEPCAPS")
    os.setgroups([kernel_gid])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    keep_capabilities(CAP_KILL, *((CAP_SETUID, CAP_SETGID) if start else ()))
    _checked(libc, libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
    program = b"".join(struct.pack("HBBI", *op) for op in FILTER)
    fprog = _Program(len(FILTER), program)
    _checked(libc, libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


# -- files in the state dir: the sandbox user can tamper with them, so never follow a
# link, never block on a FIFO, never read more than asked.
def read_file(path, limit):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > limit:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        chunks, size = [], 0
        while size < limit:
            chunk = os.read(fd, limit - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_file(path, data, mode=0o600, group=None):
    """Atomic replace (temp file + rename): a reader sees the old or the new file, whole."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        os.unlink(tmp)
    except OSError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        if group is not None:
            os.fchown(fd, -1, group)
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)


# a connection file's port of each kind of socket
PORT_NAMES = (
    (SHELL, "shell_port"),
    (IOPUB, "iopub_port"),
    (STDIN, "stdin_port"),
    (CONTROL, "control_port"),
    (HB, "hb_port"),
)


def free_ports(count):
    """``count`` tcp ports on 127.0.0.1 that nothing listens on now (the kernel binds them next)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def tcp_ports(info):
    """A tcp kernel's ports by kind, from its connection file; None for an ipc kernel."""
    if not isinstance(info, dict) or info.get("transport") != "tcp":
        return None
    return {kind: int(info[name]) for kind, name in PORT_NAMES}


def read_json(path):
    data = read_file(path, 65536)
    if data is None:
        return None
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Paths:
    def __init__(self, state_dir, kernel_id):
        base = os.path.join(state_dir, "k-" + kernel_id)
        self.ipc_dir = os.path.join(state_dir, "ipc")  # the kernel's: its connection file and sockets
        self.ip = os.path.join(self.ipc_dir, "k-" + kernel_id)  # ipc "ports" are suffixes: <ip>-<port>
        self.connection = self.ip + ".json"
        self.log = base + ".log"
        self.log_old = base + ".log.1"
        self.pid = base + ".pid"
        self.exit = base + ".exit"


def log_tail(paths, limit):
    parts = [read_file(paths.log_old, limit) or b"", read_file(paths.log, limit) or b""]
    data = b"".join(parts)[-limit:]
    if len(data) == limit and b"\n" in data:
        data = data[data.index(b"\n") + 1 :]  # start on a whole line
    return data.decode("utf-8", "replace")


class Log:
    """The kernel's stdout+stderr, read from a pipe into two files of at most LOG_CAP each."""

    def __init__(self, paths, fd):
        self.paths = paths
        self.fd = fd  # read end of the kernel's output pipe
        self.file = None
        self.size = 0
        self.open_new()

    def open_new(self):
        if self.file is not None:
            os.close(self.file)
            self.file = None
        try:
            os.unlink(self.paths.log)
        except OSError:
            pass
        try:
            self.file = os.open(self.paths.log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError:
            self.file = None  # something was put in its way: keep draining, drop the text
        self.size = 0

    def pump(self):
        """Move what the kernel wrote into the file: True if data, None if none yet, False at EOF."""
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EINTR):
                return None
            data = b""
        if not data:
            return False
        if self.file is not None:
            try:
                os.write(self.file, data)
            except OSError:
                pass
        self.size += len(data)
        if self.size >= LOG_CAP:
            try:
                os.rename(self.paths.log, self.paths.log_old)
            except OSError:
                pass
            self.open_new()
        return True

    def drain(self):
        while self.fd is not None and self.pump():
            pass


def proc_start_time(pid):
    """Field 22 of /proc/<pid>/stat (start time), and whether the process is a zombie."""
    data = read_file(f"/proc/{pid}/stat", 4096)
    if not data:
        return None, True
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[19].decode(), fields[0] == b"Z"


def alive(record):
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    start, zombie = proc_start_time(pid)
    return start is not None and not zombie and start == record.get("start")


# -- ZMTP 3.0 (https://rfc.zeromq.org/spec/23/), NULL mechanism: the launcher speaks it
# itself on plain unix sockets. With libzmq here, each message would also cross libzmq's
# I/O thread and an eventfd handoff, which gVisor makes expensive (a ZMQ round trip
# between two processes measured 880 us there, a pipe's 160 us).
GREETING = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31
MORE, LONG, COMMAND = 1, 2, 4
RECONNECT = 0.1  # seconds between connection attempts (the kernel binds after it starts)
PENDING_CAP = 64 << 20  # bytes queued for a socket that is not connected yet


class ZmtpError(Exception):
    """The kernel's end does not speak ZMTP 3 as expected."""


def zmtp_frames(parts, out):
    last = len(parts) - 1
    for i, part in enumerate(parts):
        n = len(part)
        more = MORE if i < last else 0
        out.append(bytes((more, n)) if n < 256 else bytes((more | LONG,)) + n.to_bytes(8, "big"))
        out.append(part)


def zmtp_command(name, properties):
    body = [bytes((len(name),)), name]
    for key, value in properties:
        body += [bytes((len(key),)), key, len(value).to_bytes(4, "big"), value]
    body = b"".join(body)
    return (
        bytes((COMMAND, len(body))) if len(body) < 256 else bytes((COMMAND | LONG,)) + len(body).to_bytes(8, "big")
    ) + body


class Peer:
    """One ZMTP connection to one of the kernel's sockets, as a DEALER (or SUB for iopub)."""

    key = b""  # the kernel's HMAC key, for checking and signing again a cut iopub message

    def __init__(self, kind, path, socket_type, identity):
        self.kind = kind
        self.path = path  # an ipc socket's path, or (host, port) of a tcp one
        properties = [(b"Socket-Type", socket_type)]
        if socket_type == b"DEALER":
            properties.append((b"Identity", identity))
        self.hello = GREETING + zmtp_command(b"READY", properties)
        self.sock = None
        self.retry_at = 0.0
        self.pending = []  # encoded messages waiting for the handshake
        self.pending_size = 0
        self.reset()

    def reset(self):
        self.ready = False
        self.greeted = False
        self.connecting = False
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.parts = []

    @property
    def fd(self):
        return self.sock.fileno() if self.sock is not None else None

    def events(self):
        return select.POLLIN | (select.POLLOUT if self.outbuf or self.connecting else 0)

    def connect(self, now):
        if self.sock is not None or now < self.retry_at:
            return
        sock = socket.socket(socket.AF_UNIX if isinstance(self.path, str) else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(self.path)
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()  # not bound yet (ENOENT, ECONNREFUSED): try again soon
            self.retry_at = now + RECONNECT
            return
        self.sock = sock
        self.reset()
        self.connecting = code != 0
        self.outbuf += self.hello

    def drop(self, now):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.reset()
        self.retry_at = now + RECONNECT

    def send(self, parts):
        chunks = []
        zmtp_frames(parts, chunks)
        data = b"".join(chunks)
        if self.ready:
            self.outbuf += data
            self.flush()
        elif self.pending_size + len(data) <= PENDING_CAP:
            self.pending.append(data)  # like libzmq, queue while the peer is not there
            self.pending_size += len(data)

    def flush(self):
        if self.connecting or not self.outbuf:
            return
        try:
            n = self.sock.send(self.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        del self.outbuf[:n]

    def on_writable(self, now):
        if self.connecting:
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.drop(now)
                return
            self.connecting = False
        try:
            self.flush()
        except OSError:
            self.drop(now)

    def on_readable(self, out, now):
        try:
            data = self.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(now)  # the kernel went away (or restarts): reconnect like libzmq
            return
        self.inbuf += data
        view = memoryview(self.inbuf)
        try:
            pos = self.parse(view, out)
        finally:
            view.release()
        del self.inbuf[:pos]
        if not self.inbuf and pos > 1 << 20:
            self.inbuf = bytearray()  # a big message's room given back (del keeps the allocation)
        if self.outbuf:
            try:
                self.flush()
            except OSError:
                self.drop(now)

    def parse(self, buf, out):
        pos, end = 0, len(buf)
        while True:
            if not self.greeted:
                if end - pos < 64:
                    return pos
                greeting = buf[pos : pos + 64]
                if greeting[0] != 0xFF or not greeting[9] & 1 or greeting[10] < 3:
                    raise ZmtpError("the kernel's socket does not speak ZMTP 3")
                if bytes(greeting[12:32]).rstrip(b"\0") != b"NULL":
                    raise ZmtpError("the kernel's socket wants a security mechanism other than NULL")
                self.greeted = True
                pos += 64
                continue
            if end - pos < 2:
                return pos
            flags = buf[pos]
            if flags & LONG:
                if end - pos < 9:
                    return pos
                size, head = int.from_bytes(buf[pos + 1 : pos + 9], "big"), 9
            else:
                size, head = buf[pos + 1], 2
            if size > MAX_MESSAGE:
                raise ZmtpError("frame too large")
            if end - pos < head + size:
                return pos
            body = bytes(buf[pos + head : pos + head + size])
            pos += head + size
            if flags & COMMAND:
                self.command(body)
            elif self.ready:
                self.parts.append(body)
                if not flags & MORE:
                    for parts in self.fitted(self.parts):
                        encode(self.kind, parts, out)
                    self.parts = []
            else:
                raise ZmtpError("a message before the handshake")

    def fitted(self, parts):
        """An iopub message over OUTPUT_CAP made to fit, and a stream over STREAM_PIECE sent in pieces
        (see frames.cut_message), so that nothing the code prints can grow the server's memory;
        other channels as they are."""
        size = sum(len(p) for p in parts)
        if self.kind != IOPUB or size <= frames.STREAM_PIECE:
            return [parts]
        stream = frames.is_stream(parts)
        if size <= OUTPUT_CAP and not stream:
            return [parts]
        cap = frames.STREAM_PIECE if stream else OUTPUT_CAP
        return cut_message(parts, self.key, iopub=True, cap=cap, where="in the sandbox", most_text=frames.STREAM_MOST)

    def command(self, body):
        name = body[1 : 1 + body[0]] if body else b""
        if name == b"READY" and not self.ready:
            self.ready = True
            for data in self.pending:
                self.outbuf += data
            self.pending, self.pending_size = [], 0
        elif name == b"ERROR":
            raise ZmtpError("the kernel's socket refused us: " + body[7:].decode("utf-8", "replace"))
        # other commands (PING, SUBSCRIBE...) are ZMTP 3.1; we announced 3.0


class Relay:
    """ZMTP peers of the kernel's five sockets; frames go through as they are (big outputs cut)."""

    def __init__(self, ip, key=b"", ports=None):
        # ``ports``: the kernel's tcp ports on 127.0.0.1 by kind (a tcp kernel); else ipc sockets at ``ip``.
        # One routing id for shell, stdin and control: the kernel answers an input_request
        # on stdin to the identities of the shell request, so they must match.
        identity = b"relay-" + os.urandom(8).hex().encode()
        self.peers = {}
        for kind, port, socket_type in (
            (SHELL, 1, b"DEALER"),
            (IOPUB, 2, b"SUB"),
            (STDIN, 3, b"DEALER"),
            (CONTROL, 4, b"DEALER"),
            (HB, 5, b"DEALER"),
        ):
            address = ("127.0.0.1", ports[kind]) if ports else f"{ip}-{port}"
            self.peers[kind] = Peer(kind, address, socket_type, identity)
        self.peers[IOPUB].key = key
        self.connect(time.monotonic())

    def connect(self, now):
        """Connect the peers that are not; the time of the next attempt, or None."""
        retry = None
        for peer in self.peers.values():
            peer.connect(now)
            if peer.sock is None:
                retry = peer.retry_at if retry is None else min(retry, peer.retry_at)
        return retry

    def send(self, kind, parts):
        try:
            self.peers[kind].send(parts)
        except OSError:
            self.peers[kind].drop(time.monotonic())

    def ready(self):
        return all(peer.ready for peer in self.peers.values())

    def drain(self, out):
        """What the kernel sent before it went: read each peer until nothing is waiting."""
        now = time.monotonic()
        for peer in self.peers.values():
            for _ in range(1000):
                if peer.sock is None or not select.select([peer.sock], [], [], 0)[0]:
                    break
                try:
                    peer.on_readable(out, now)
                except ZmtpError:
                    peer.drop(now)

    def close(self):
        for peer in self.peers.values():
            peer.drop(0)
        self.peers = {}


def read_request(fd):
    """The first line of stdin, and the bytes already read after it."""
    data = bytearray()
    while b"\n" not in data:
        if len(data) > MAX_REQUEST:
            raise ValueError("request line too long")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise ValueError("stdin ended before the request line")
        data += chunk
    line, _, rest = bytes(data).partition(b"\n")
    request = json.loads(line.decode("utf-8"))
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    kernel_id = request.get("kernel_id")
    if not isinstance(kernel_id, str) or not KERNEL_ID.match(kernel_id):
        raise ValueError(f"kernel_id must match {KERNEL_ID.pattern}")
    state_dir = request.get("state_dir")
    if not isinstance(state_dir, str) or not os.path.isabs(state_dir):
        raise ValueError("state_dir must be an absolute path")
    return request, rest


def prepare_dir(path, mode, group=None):
    """A directory of ours with this mode (and group); never one someone else put there."""
    try:
        os.makedirs(path, mode)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ValueError(f"{path} is not a directory of ours")
    if group is not None and st.st_gid != group:
        os.chown(path, -1, group)  # a group we are in: no capability needed
    os.chmod(path, mode)


class Launcher:
    def __init__(self, mode, request, rest, users=None):
        self.mode = mode
        self.request = request
        self.users = users  # ((kernel uid, gid), (launcher uid, gid)), or None: one user
        self.paths = Paths(request["state_dir"], request["kernel_id"])
        self.out = Output(1)
        self.decoder = FrameDecoder(MAX_MESSAGE, skip=False)
        self.pending = rest  # stream bytes that came with the request line
        self.relay = None
        self.proc = None  # start mode: our child
        self.record = None  # pid record {"pid", "start"}
        self.log = None
        self.wake_r = None
        self.announce = None  # the started/attached event, until the kernel's sockets answer

    # -- kernel process --------------------------------------------------------------
    def start_kernel(self):
        request = self.request
        connection = request.get("connection") or {}
        if not isinstance(connection, dict) or "key" not in connection:
            raise ValueError("connection must hold the kernel's key")
        argv = request.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        env = request.get("env") or {}
        if not isinstance(env, dict):
            raise ValueError("env must be an object")
        # the kernel passes through the state dir (never lists or reads it) to its own ipc dir
        kernel_gid = self.users[0][1] if self.users else None
        prepare_dir(request["state_dir"], 0o710 if self.users else 0o700, kernel_gid)
        prepare_dir(self.paths.ipc_dir, 0o770 if self.users else 0o700, kernel_gid)
        info = dict(connection)
        if request.get("transport") == "tcp":
            ports = free_ports(len(PORT_NAMES))
            info.update(transport="tcp", ip="127.0.0.1", **{name: ports[i] for i, (_, name) in enumerate(PORT_NAMES)})
        else:
            info.update(
                transport="ipc", ip=self.paths.ip, shell_port=1, iopub_port=2, stdin_port=3, control_port=4, hb_port=5
            )
        info.setdefault("signature_scheme", "hmac-sha256")
        write_file(self.paths.connection, json.dumps(info).encode(), 0o640 if self.users else 0o600, kernel_gid)
        for stale in (self.paths.exit, self.paths.pid):
            try:
                os.unlink(stale)
            except OSError:
                pass
        argv = [
            a.replace("{connection_file}", self.paths.connection).replace("{file}", self.paths.connection) for a in argv
        ]
        full_env = dict(os.environ)
        full_env.update((str(k), str(v)) for k, v in env.items())
        as_user = {}
        if self.users:
            (uid, gid), _ = self.users
            as_user = dict(user=uid, group=gid, extra_groups=[], umask=KERNEL_UMASK)
            if full_env.get("HOME") in (None, "", "/root"):  # the engine's HOME for a root exec
                try:
                    full_env["HOME"] = pwd.getpwuid(uid).pw_dir
                except KeyError:
                    full_env["HOME"] = request.get("cwd") or "/"
        read_end, write_end = os.pipe()
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                cwd=request.get("cwd") or None,
                env=full_env,
                start_new_session=True,
                **as_user,
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            if self.users:
                keep_capabilities(CAP_KILL)  # what interrupt and stop need, nothing more
        os.set_blocking(read_end, False)
        self.log = Log(self.paths, read_end)
        start, _ = proc_start_time(self.proc.pid)
        self.record = {"pid": self.proc.pid, "start": start}
        write_file(self.paths.pid, json.dumps(self.record).encode())

    def kernel_status(self):
        """None while the kernel runs, else the exit record."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return None
            return {"code": code if code >= 0 else None, "signal": -code if code < 0 else None, "error": None}
        record = read_json(self.paths.exit)
        if record is not None:
            return record
        if alive(self.record):
            return None
        # the start launcher writes the record right after reaping: give it a moment
        for _ in range(20):
            time.sleep(0.1)
            record = read_json(self.paths.exit)
            if record is not None:
                return record
        return {"code": None, "signal": None, "error": "the kernel's process is gone and left no exit record"}

    def signal_kernel(self, signum):
        # never signal a pid that may have been reused: ours must still be unreaped,
        # another launcher's must still carry the recorded start time
        if self.record is None:
            return
        if (self.proc.returncode is not None) if self.proc is not None else not alive(self.record):
            return
        try:
            os.killpg(int(self.record["pid"]), signum)  # own session: pgid == pid
        except OSError:
            pass

    # -- stream ------------------------------------------------------------------------
    def handle(self, messages, out):
        for kind, parts in messages:
            if self.relay is None:
                return  # the kernel exited while this batch was handled
            if kind < LAUNCHER:
                if kind > HB:
                    raise FrameError(f"unknown kind {kind}")
                self.relay.send(kind, parts)
                continue
            if len(parts) != 1:
                raise FrameError("a launcher op has one part")
            op = json.loads(parts[0].decode("utf-8")).get("op")
            if op == "stop":
                self.signal_kernel(signal.SIGKILL)
            elif op == "interrupt":
                self.signal_kernel(signal.SIGINT)
            elif op == "log":
                event(out, event="log", log=log_tail(self.paths, LOG_CAP))
            elif op == "ping":
                event(out, event="pong")
            elif op == "detach":
                # a pause: this process holds the engine's stream, which no checkpoint can keep;
                # it goes, the kernel runs on (an attach takes it back; nobody records its exit)
                self.proc = None
                self.disconnect()
                return
            else:
                event(out, event="error", message=f"unknown op {op!r}")

    def disconnect(self):
        """stdin ended: the server is gone. Stop relaying, keep the kernel."""
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        self.out.close()

    def exited(self, status):
        out = []
        if self.relay is not None:
            self.relay.drain(out)
        if self.log is not None:
            self.log.drain()
        if self.proc is not None:
            try:
                write_file(self.paths.exit, json.dumps(status).encode())
            except OSError:
                pass
        event(
            out,
            event="exited",
            code=status.get("code"),
            signal=status.get("signal"),
            error=status.get("error"),
            log=log_tail(self.paths, EXIT_LOG),
        )
        self.out.write(out)
        self.disconnect()

    def run(self):
        if self.mode == "start":
            # SIGCHLD wakes the poll through this pipe, so an exit is seen at once
            self.wake_r, wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(wake_w, False)
            signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            signal.signal(signal.SIGCHLD, lambda *_: None)
            try:
                self.start_kernel()
            except (OSError, ValueError) as e:
                status = {"code": None, "signal": None, "error": f"could not start the kernel: {e}"}
                try:
                    write_file(self.paths.exit, json.dumps(status).encode())
                except OSError:
                    pass
                out = []
                event(out, event="exited", log="", **status)
                self.out.write(out)
                return 1
        else:
            record = read_json(self.paths.exit)
            if record is None:
                self.record = read_json(self.paths.pid)
                if self.record is None:
                    record = {
                        "code": None,
                        "signal": None,
                        "error": f"no kernel {self.request['kernel_id']} in {self.request['state_dir']}",
                    }
                else:
                    record = self.kernel_status()
            if record is not None:
                self.exited(record)
                return 0

        key = (self.request.get("connection") or {}).get("key") or self.request.get("key") or ""
        self.relay = Relay(self.paths.ip, key.encode(), tcp_ports(read_json(self.paths.connection)))
        # announced once the kernel's five sockets have answered (a kernel that is up, not
        # just spawned); relaying starts now, what comes early waits in the peers' queues
        self.announce = {"event": "started" if self.mode == "start" else "attached", "pid": self.record["pid"]}
        out = []
        if self.pending:
            self.feed(self.pending, out)
        self.out.write(out)
        return self.loop()

    def feed(self, data, out):
        try:
            self.handle(self.decoder.feed(data), out)
        except (FrameError, ValueError, AttributeError) as e:
            # a broken server: drop the link, never the kernel
            warn(f"bad input from the server, disconnecting: {e}")
            self.disconnect()

    def watched(self):
        """fd -> poll events wanted now."""
        want = {}
        if self.relay is not None:
            want[0] = select.POLLIN
            for peer in self.relay.peers.values():
                if peer.sock is not None:
                    want[peer.fd] = peer.events()
        if self.wake_r is not None:
            want[self.wake_r] = select.POLLIN
        if self.log is not None and self.log.fd is not None:
            want[self.log.fd] = select.POLLIN
        return want

    def loop(self):
        poller = select.poll()
        watched = {}
        interval = SAFETY_INTERVAL if self.proc is not None else CHECK_INTERVAL
        next_check = time.monotonic() + interval
        while True:
            if self.relay is None and self.proc is None:
                return 0  # attach mode after the server left
            now = time.monotonic()
            wake_at = next_check
            if self.relay is not None:
                retry = self.relay.connect(now)
                if retry is not None:
                    wake_at = min(wake_at, retry)
            want = self.watched()
            for fd in [fd for fd in watched if fd not in want]:
                poller.unregister(fd)
                del watched[fd]
            for fd, events in want.items():
                if watched.get(fd) != events:
                    poller.register(fd, events)  # registers or modifies
                    watched[fd] = events
            ready = poller.poll(max(0, (wake_at - now) * 1000))
            now = time.monotonic()
            out = []
            check = False
            peers = {peer.fd: peer for peer in self.relay.peers.values()} if self.relay is not None else {}
            for fd, events in ready:
                if fd == 0:
                    data = os.read(0, 1 << 16)
                    if data:
                        self.feed(data, out)
                    else:
                        self.disconnect()
                        peers = {}
                elif fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 512)
                    except OSError:
                        pass
                    check = True
                elif self.log is not None and fd == self.log.fd:
                    if self.log.pump() is False:
                        os.close(self.log.fd)
                        self.log.fd = None
                elif fd in peers:
                    peer = peers[fd]
                    try:
                        if events & select.POLLOUT:
                            peer.on_writable(now)
                        if events & (select.POLLIN | select.POLLHUP | select.POLLERR) and peer.sock is not None:
                            peer.on_readable(out, now)
                    except ZmtpError as e:
                        warn(f"kernel {self.request['kernel_id']}: {e}")
                        peer.drop(now)
            if self.announce is not None and self.relay is not None and self.relay.ready():
                ready_event, self.announce = self.announce, None
                out.insert(0, b"".join(event([], **ready_event)))
            self.out.write(out)
            # start mode: SIGCHLD says when; attach mode: look at the pid now and then
            if not check and now >= next_check:
                check = True
            if check:
                next_check = now + interval
                status = self.kernel_status()
                if status is not None:
                    self.exited(status)
                    return 0


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode not in ("start", "attach"):
        sys.stderr.write("usage: launcher start|attach (request on stdin)\n")
        return 2
    try:
        request, rest = read_request(0)
        users = users_of(request)
    except (ValueError, OSError) as e:
        out = []
        event(out, event="exited", code=None, signal=None, log="", error=f"bad request: {e}")
        Output(1).write(out)
        return 2
    if users:
        try:
            become_launcher(users, start=mode == "start")
        except (OSError, AttributeError) as e:  # AttributeError: a libc without capset
            out = []
            error = (
                f"the launcher could not take its own user ({e}); it needs root with CAP_SETUID, CAP_SETGID "
                "and CAP_KILL (a sandbox made by an older version lacks them: remove it and make a new one)"
            )
            event(out, event="exited", code=None, signal=None, log="", error=error)
            Output(1).write(out)
            return 2
    return Launcher(mode, request, rest, users).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
