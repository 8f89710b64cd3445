"""The SandboxManager of the Jupyter server running in this process, if any.

The server extension sets it when it starts; code that runs inside the server process but is
not handed the extension (the kernel provisioner, made by jupyter_client) finds it here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .manager import SandboxManager


@dataclass
class Running:
    manager: SandboxManager
    owner: str  # whom the server's own actions (its notebook kernels) act for


_running: Running | None = None


def set_running(manager: SandboxManager | None, owner: str = "") -> None:
    global _running
    _running = Running(manager, owner) if manager is not None else None


def running() -> Running | None:
    return _running
