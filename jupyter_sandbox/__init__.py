"""jupyter-sandbox: sandboxed, stateful code execution inside Jupyter."""

from __future__ import annotations

from typing import Any, Protocol

from .errors import SandboxError
from .models import Execution, ExecutionError, Logs, OutputMessage, Result, SandboxModel, SandboxSpec

__version__ = "0.1.0"


class MagicsHost(Protocol):
    """What ``%load_ext`` hands us: an IPython shell (typed by what we use of it)."""

    def register_magics(self, *magics: object) -> None: ...


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    # deferred: jupyter_server is heavy, and `import jupyter_sandbox` (the client's users) needs none of it
    from .server.app import SandboxApp

    return [{"module": "jupyter_sandbox", "app": SandboxApp}]


def load_ipython_extension(ipython: MagicsHost) -> None:
    """``%load_ext jupyter_sandbox``: the %%sandbox, %remote_eval and %sandbox magics."""
    # deferred: IPython is needed only inside IPython
    from .magics import SandboxMagics

    ipython.register_magics(SandboxMagics)


def __getattr__(name: str) -> Any:
    if name in ("Sandbox", "AsyncSandbox", "OneShot"):
        from . import client  # deferred: the client pulls in httpx

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
