"""jupyter-sandbox: sandboxed, stateful code execution inside Jupyter."""

from __future__ import annotations

from .errors import SandboxError
from .models import Execution, ExecutionError, Logs, OutputMessage, Result, SandboxModel, SandboxSpec

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .app import SandboxApp

    return [{"module": "jupyter_sandbox", "app": SandboxApp}]


__all__ = [
    "Execution",
    "ExecutionError",
    "Logs",
    "OutputMessage",
    "Result",
    "SandboxError",
    "SandboxModel",
    "SandboxSpec",
    "__version__",
]
