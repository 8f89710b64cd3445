"""Runs INSIDE a sandbox: ipykernel started as ipykernel_launcher does, without its debugger.

Started as ``python -c <this source> -f <connection file>``. debugpy is unavailable while the kernel
starts: its debugger (JupyterLab's debugger panel; nothing else uses it) is then off, and debugpy, a
third of the kernel's imports, is not loaded (~60 ms of a kernel start in a sandbox). Once started,
code in the kernel may import debugpy as usual.
"""

import sys

if sys.path[0] == "":
    del sys.path[0]  # (as ipykernel_launcher: the shell puts the working directory back)
sys.modules["debugpy"] = None  # an import of it now fails at once
from ipykernel.kernelapp import IPKernelApp  # noqa: E402  (after debugpy is blocked)

app = IPKernelApp.instance()
app.initialize()
del sys.modules["debugpy"]
app.start()
