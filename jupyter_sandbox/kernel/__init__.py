"""The sandboxed notebook kernel: a kernel provisioner and the kernelspec that uses it.

``kernelspec/kernel.json`` is installed as ``share/jupyter/kernels/python3-sandboxed`` (the
"Python 3 (sandboxed)" card in JupyterLab's launcher).
"""

from __future__ import annotations

PROVISIONER_NAME = "jupyter-sandbox-provisioner"
KERNEL_NAME = "python3-sandboxed"
