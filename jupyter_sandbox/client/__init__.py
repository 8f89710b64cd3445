"""The Python client: E2B-style ``Sandbox`` / ``AsyncSandbox`` and python-executor-style ``OneShot``.

``Sandbox().run_code(code)`` works the way E2B's code-interpreter SDK does, against a Jupyter
server running the jupyter_sandbox extension (found by ``find_server``). Where no server is
found, a plain script gets the embedded manager (jupyter_sandbox/embedded.py: the same code the
server runs, inside this process), so the E2B examples run as scripts with nothing else started.
client/ itself is a pure client: it imports no manager.

- connection.py: ``Connection``, the one interface, and ``HTTPConnection``
- discovery.py: which server, and the connection to it
- sandbox.py: ``AsyncSandbox`` (the implementation) and ``Sandbox`` (made from it)
- oneshot.py: ``OneShot``
- loop.py: the private event loop behind the blocking calls
"""

from __future__ import annotations

from ..models import ExecutionResult
from .connection import Connection, HTTPConnection, error_from_response
from .discovery import ServerChoice, connect, find_server
from .oneshot import OneShot
from .sandbox import AsyncFiles, AsyncSandbox, Files, NoInput, Sandbox

__all__ = [
    "AsyncFiles",
    "AsyncSandbox",
    "Connection",
    "ExecutionResult",
    "Files",
    "HTTPConnection",
    "NoInput",
    "OneShot",
    "Sandbox",
    "ServerChoice",
    "connect",
    "error_from_response",
    "find_server",
]
