"""The SandboxManager of the Jupyter server running in this process, if any.

The server extension sets it when it starts; code that runs inside the server process but is
not handed the extension (the kernel provisioner, made by jupyter_client) finds it here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .manager import SandboxManager


@dataclass
class Running:
    manager: SandboxManager
    # whom a notebook kernel starting now acts for (asked at its start: the server's answer
    # depends on the request that starts it)
    owner: Callable[[], str]


_running: Running | None = None


def set_running(manager: SandboxManager | None, owner: str | Callable[[], str] = "") -> None:
    global _running
    if manager is None:
        _running = None
    elif callable(owner):
        _running = Running(manager, owner)
    else:
        name = owner
        _running = Running(manager, lambda: name)


def running() -> Running | None:
    return _running
