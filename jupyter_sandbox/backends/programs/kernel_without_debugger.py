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

if sys.path[0] == "":
    del sys.path[0]  # (as ipykernel_launcher: the shell puts the working directory back)
sys.modules["debugpy"] = None  # an import of it now fails at once
from ipykernel.kernelapp import IPKernelApp  # noqa: E402  (after debugpy is blocked)

# before the command line's own options, which may still say otherwise
sys.argv[1:1] = [f"--HistoryManager.db_cache_size={HISTORY_BATCH}"]


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


pipe_over_ipc()
del pipe_over_ipc
app = IPKernelApp.instance()
app.initialize()
del sys.modules["debugpy"]
levels = [handler.level for handler in app.log.handlers]
if levels and not app.log.propagate:  # its records go to these handlers only
    app.log.setLevel(max(app.log.level, min(levels)))
app.start()
