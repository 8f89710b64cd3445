"""Runs INSIDE a sandbox: ipykernel started as ipykernel_launcher does, without its debugger, and
without two costs per execution that show nothing (the API's kernels: issue 25's hot path).

Started as ``python -c <this source> -f <connection file>``. debugpy is unavailable while the kernel
starts: its debugger (JupyterLab's debugger panel; nothing else uses it) is then off, and debugpy, a
third of the kernel's imports, is not loaded (~60 ms of a kernel start in a sandbox). Once started,
code in the kernel may import debugpy as usual.

Per execution (CPU of a warm ``1+1``, measured in a sandbox with benchmarks/bench_cpu.py):

- IPython writes each cell to its SQLite history at once, from a thread of its own that then
  takes the GIL from the execution (~0.9 ms of the kernel's ~4 ms). Here the history is written
  every ``HISTORY_BATCH`` cells (IPython's ``HistoryManager.db_cache_size``) and when the kernel
  exits; ``In``, ``_i``, ``%history`` of this session are in memory as always. What a killed
  kernel (a context's restart) had not written yet is not in the file for the next session.
- Flushing stdout and stderr is a round trip to ipykernel's IOPub thread, six times per execution
  (before and after it, and around its result), each one waking that thread and waiting for it
  (~0.6 ms of a warm ``1+1``'s latency). Here a flush with nothing written and none under way
  returns at once (``flush_only_when_written``): all of IOPub's messages leave from that thread
  in the order they were handed to it, so there is nothing a round trip would put in order.
- ipykernel 7 receives shell requests on a thread of its own, for subshells (JEP 91: a notebook
  extension's requests that run while a cell does), and hands each one to the main thread and its
  reply back. The API sends one request at a time to a context, so here the main thread reads the
  shell socket itself (``without_subshells``, ipykernel's own path when it has no such thread): a
  quarter of the kernel's system calls per execution, each of which costs most under gVisor.
  kernel_info says no "kernel subshells"; a request to make one is answered with an error.
- Each IOPub message is handed to ipykernel's IOPub thread with a wake-up sent over a ZMQ inproc
  socket, which costs both threads several system calls in libzmq. Here the wake-up is the
  thread's event loop's own (``wake_iopub_by_its_loop``: tornado's ``add_callback``, one byte on
  a pipe), and one wake-up serves the messages queued before it runs (an execution's busy status
  and its input go together); the messages, their order and the thread that sends them are the
  same, and code that queues more than ``IOPUB_QUEUE`` waits for the thread, as it waited on
  ipykernel's pipe when that was full (tests/security/test_link_messages.py: a flood of messages).
- ``os.getpid()`` is read once, and again in a forked child (``pid_read_once``): jupyter_client and
  ipykernel call it on every message to notice a fork, a dozen system calls per execution that
  gVisor traps one by one.
- ipykernel reads ``run_cell``'s signature on every execution; here once per method
  (``signature_read_once``).
- ipykernel sleeps 0.5 ms between an execution's last output and its reply (``_execute_sleep``,
  "on rare occasions, the flush doesn't seem to make it to the clients"), so that a client that
  stops at the reply has the output. The server's collector waits for both the reply and the
  idle status, in either order (core/execute_request.py), so here the kernel does not sleep.
- traitlets sets the kernel's logger to DEBUG and its handler to the log level (WARNING): every
  debug call builds a record the handler then drops (~0.3 ms). The logger gets its handlers' level,
  so exactly the same lines are logged.

The output of the kernel's forked subprocesses reaches it over a Unix socket in a private folder
instead of ipykernel's TCP socket on 127.0.0.1 (``pipe_over_ipc``): gVisor cannot checkpoint a
sandbox that listens on TCP ("endpoint still has waiters upon save"), and a pause checkpoints it
(docs/pause.md). The messages are the same; where ipc is missing ipykernel's own way stays.
"""

import sys

HISTORY_BATCH = 20
IOPUB_QUEUE = 1000  # messages queued for the IOPub thread before a sender waits (ZMQ's default high-water mark)
IOPUB_WAIT = 10.0  # seconds a sender waits at most (ipykernel's flush_timeout)

if sys.path[0] == "":
    del sys.path[0]  # (as ipykernel_launcher: the shell puts the working directory back)
sys.modules["debugpy"] = None  # an import of it now fails at once
from ipykernel.kernelapp import IPKernelApp  # noqa: E402  (after debugpy is blocked)

# before the command line's own options, which may still say otherwise
sys.argv[1:1] = [f"--HistoryManager.db_cache_size={HISTORY_BATCH}", "--Kernel._execute_sleep=0"]


def pipe_over_ipc():
    import os
    import tempfile
    import warnings

    import zmq
    from ipykernel import iostream
    from zmq.eventloop.zmqstream import ZMQStream

    thread = iostream.IOPubThread
    if not zmq.has("ipc") or not hasattr(thread, "_setup_pipe_in") or not hasattr(thread, "_setup_pipe_out"):
        return

    def setup_pipe_in(self):
        self._pipe_uuid = os.urandom(16)  # (as ipykernel's: it authenticates the pipe's messages)
        pipe_in = self.socket.context.socket(zmq.PULL)
        pipe_in.linger = 0
        self._pipe_address = "ipc://" + os.path.join(tempfile.mkdtemp(prefix="jsbx-pipe-"), "pipe")
        try:
            pipe_in.bind(self._pipe_address)
        except zmq.ZMQError as e:
            warnings.warn(f"Couldn't bind IOPub Pipe: {e}\nsubprocess output will be unavailable.", stacklevel=2)
            self._pipe_flag = False
            pipe_in.close()
            return
        self._pipe_in = ZMQStream(pipe_in, self.io_loop)
        self._pipe_in.on_recv(self._handle_pipe_msg)

    def setup_pipe_out(self):
        ctx = zmq.Context()  # a new one after the fork
        pipe_out = ctx.socket(zmq.PUSH)
        pipe_out.linger = 3000
        pipe_out.connect(self._pipe_address)
        return ctx, pipe_out

    thread._setup_pipe_in, thread._setup_pipe_out = setup_pipe_in, setup_pipe_out


def flush_only_when_written():
    from ipykernel.iostream import OutStream

    if not all(hasattr(OutStream, name) for name in ("_flush", "_rotate_buffers", "_schedule_flush")):
        return  # not the ipykernel this was written against: keep its flush as it is
    flush, send_written = OutStream.flush, OutStream._flush

    def _flush(self):
        # (on the IOPub thread) a flush under way: its text is handed to the thread's queue
        # after the buffers are emptied, so until it returns a flush must wait for it
        self._jsbx_flushing = True
        try:
            send_written(self)
        finally:
            self._jsbx_flushing = False

    def quiet_flush(self):
        if self.echo is None and not self._flush_pending:
            with self._buffer_lock:
                written = any(buffer.tell() for buffer in self._buffers.values())
            if not written and not getattr(self, "_jsbx_flushing", False):
                return
        flush(self)

    OutStream._flush, OutStream.flush = _flush, quiet_flush


def without_subshells():
    import threading

    from ipykernel import kernelapp, kernelbase

    if not hasattr(kernelapp, "ShellChannelThread") or not hasattr(kernelbase.Kernel, "_supports_kernel_subshells"):
        return  # an ipykernel without subshells

    class NoShellChannelThread:
        """Where ipykernel keeps its shell channel thread: false for its checks of one, and the main
        thread as the one whose cells an interrupt cancels (what the thread's parent_thread is)."""

        parent_thread = threading.main_thread()

        def __bool__(self):
            return False

    kernelapp.ShellChannelThread = lambda *args, **kwargs: NoShellChannelThread()
    kernelbase.Kernel._supports_kernel_subshells = property(lambda kernel: bool(kernel.shell_channel_thread))


def wake_iopub_by_its_loop():
    import threading

    from ipykernel import iostream

    thread = iostream.IOPubThread
    if not hasattr(thread, "schedule") or not hasattr(thread, "_handle_event"):
        return  # not the ipykernel this was written against

    def schedule(self, f):
        if not self.thread.is_alive():
            f()
            return
        self._events.append(f)
        caught_up = None
        if len(self._events) > IOPUB_QUEUE and threading.current_thread() is not self.thread:
            # code that sends faster than the thread sends on waits for it, as a full ZMQ pipe
            # made it wait: the queue would otherwise grow until the sandbox runs out of memory
            caught_up = threading.Event()
            self._events.append(caught_up.set)
        if not getattr(self, "_jsbx_wake_due", False):  # else a wake-up still to come runs these too
            self._jsbx_wake_due = True
            self.io_loop.add_callback(run_events, self)
        if caught_up is not None:
            caught_up.wait(IOPUB_WAIT)

    def run_events(self):
        # what is queued now, in order (as ipykernel's own handler: a thread that keeps writing
        # can't hold the loop); what comes after the flag is cleared brings its own wake-up
        self._jsbx_wake_due = False
        for _ in range(len(self._events)):
            self._events.popleft()()

    thread.schedule = schedule


def pid_read_once():
    import os

    read_pid = os.getpid
    pid = [read_pid()]

    def getpid():
        return pid[0]

    def read_again():
        pid[0] = read_pid()

    os.register_at_fork(after_in_child=read_again)
    getpid.__doc__ = read_pid.__doc__
    os.getpid = getpid


def signature_read_once():
    from ipykernel import ipkernel

    accepts = getattr(ipkernel, "_accepts_parameters", None)
    if accepts is None:
        return
    read = {}

    def accepts_parameters(method, names):
        key = (getattr(method, "__func__", method), tuple(names))
        if key not in read:
            read[key] = accepts(method, names)
        return read[key]

    ipkernel._accepts_parameters = accepts_parameters


pipe_over_ipc()
flush_only_when_written()
without_subshells()
wake_iopub_by_its_loop()
pid_read_once()
signature_read_once()
del pipe_over_ipc, flush_only_when_written, without_subshells, wake_iopub_by_its_loop, pid_read_once
del signature_read_once
app = IPKernelApp.instance()
app.initialize()
del sys.modules["debugpy"]
levels = [handler.level for handler in app.log.handlers]
if levels and not app.log.propagate:  # its records go to these handlers only
    app.log.setLevel(max(app.log.level, min(levels)))
app.start()
