"""The Python client: E2B-style ``Sandbox`` / ``AsyncSandbox`` and python-executor-style ``OneShot``.

``Sandbox().run_code(code)`` works the way E2B's code-interpreter SDK does, against a Jupyter
server running the jupyter_sandbox extension (found by ``find_server``). Where no server is
found, a plain script gets an in-process SandboxManager (the same code the server runs), so
the E2B examples run as scripts with nothing else started.

- connection.py: ``Connection`` and its two implementations, HTTP and in-process
- discovery.py: which server, and the connection to it
- sandbox.py: ``AsyncSandbox`` (the implementation) and ``Sandbox`` (made from it)
- oneshot.py: ``OneShot``
- loop.py: the private event loop behind the blocking calls
"""

from __future__ import annotations

from ..models import ExecutionResult
from .connection import Connection, HTTPConnection, InProcessConnection, error_from_response
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
    "InProcessConnection",
    "NoInput",
    "OneShot",
    "Sandbox",
    "ServerChoice",
    "connect",
    "error_from_response",
    "find_server",
]
