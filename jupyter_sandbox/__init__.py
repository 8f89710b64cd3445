"""jupyter-sandbox: sandboxed, stateful code execution inside Jupyter."""

from __future__ import annotations

from .errors import SandboxError
from .models import Execution, ExecutionError, Logs, OutputMessage, Result, SandboxModel, SandboxSpec

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .server.app import SandboxApp

    return [{"module": "jupyter_sandbox", "app": SandboxApp}]


def load_ipython_extension(ipython):
    """``%load_ext jupyter_sandbox``: the %%sandbox, %remote_eval and %sandbox magics."""
    from .magics import SandboxMagics

    ipython.register_magics(SandboxMagics)


def __getattr__(name):
    # The client pulls in httpx; import it only when asked for.
    if name in ("Sandbox", "AsyncSandbox", "OneShot"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncSandbox",
    "Execution",
    "ExecutionError",
    "Logs",
    "OneShot",
    "OutputMessage",
    "Result",
    "Sandbox",
    "SandboxError",
    "SandboxModel",
    "SandboxSpec",
    "__version__",
]
