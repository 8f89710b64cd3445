"""The Python client: E2B-style ``Sandbox`` / ``AsyncSandbox`` and python-executor-style ``OneShot``.

``Sandbox().run_code(code)`` works the way E2B's code-interpreter SDK does, against a Jupyter
server running the jupyter_sandbox extension (found by ``find_server``). Where no server is
found, a plain script gets the embedded manager (jupyter_sandbox/embedded.py: the same code the
server runs, inside this process), so the E2B examples run as scripts with nothing else started.
client/ itself is a pure client: it imports no manager.

- connection.py: ``Connection``, the one interface, and ``HTTPConnection``
- discovery.py: which server, and the connection to it
- sandbox.py: ``AsyncSandbox`` (the implementation) and ``Sandbox`` (made from it)
- commands.py, files.py: their ``commands`` and ``files`` (E2B's commands and filesystem APIs)
- oneshot.py: ``OneShot``
- volumes.py: ``Volume`` and ``AsyncVolume``, the caller's persistent volumes
- loop.py: the private event loop behind the blocking calls
"""

from __future__ import annotations

from ..errors import CommandExitException, CommandTimeout
from ..models import ExecutionResult
from .commands import AsyncCommandHandle, AsyncCommands, CommandHandle, CommandResult, Commands, ProcessInfo
from .connection import Connection, HTTPConnection, error_from_response
from .discovery import ServerChoice, connect, find_server
from .files import (
    AsyncFiles,
    AsyncWatchHandle,
    EntryInfo,
    Files,
    FilesystemEvent,
    FilesystemEventType,
    FileType,
    WatchHandle,
    WriteEntry,
    WriteInfo,
)
from .oneshot import OneShot
from .sandbox import AsyncSandbox, NoInput, Sandbox
from .volumes import AsyncVolume, Volume

__all__ = [
    "AsyncCommandHandle",
    "AsyncCommands",
    "AsyncFiles",
    "AsyncSandbox",
    "AsyncVolume",
    "AsyncWatchHandle",
    "CommandExitException",
    "CommandHandle",
    "CommandResult",
    "CommandTimeout",
    "Commands",
    "Connection",
    "EntryInfo",
    "ExecutionResult",
    "FileType",
    "Files",
    "FilesystemEvent",
    "FilesystemEventType",
    "HTTPConnection",
    "NoInput",
    "OneShot",
    "ProcessInfo",
    "Sandbox",
    "ServerChoice",
    "Volume",
    "WatchHandle",
    "WriteEntry",
    "WriteInfo",
    "connect",
    "error_from_response",
    "find_server",
]
