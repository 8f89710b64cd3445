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
"""

import sys

HISTORY_BATCH = 20

if sys.path[0] == "":
    del sys.path[0]  # (as ipykernel_launcher: the shell puts the working directory back)
sys.modules["debugpy"] = None  # an import of it now fails at once
from ipykernel.kernelapp import IPKernelApp  # noqa: E402  (after debugpy is blocked)

# before the command line's own options, which may still say otherwise
sys.argv[1:1] = [f"--HistoryManager.db_cache_size={HISTORY_BATCH}"]
app = IPKernelApp.instance()
app.initialize()
del sys.modules["debugpy"]
levels = [handler.level for handler in app.log.handlers]
if levels and not app.log.propagate:  # its records go to these handlers only
    app.log.setLevel(max(app.log.level, min(levels)))
app.start()
