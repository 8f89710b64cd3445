"""Which notebook a sandbox belongs to, found at list time so that a renamed notebook is followed.

A sandbox is tied to a notebook through a kernel: the notebook's whole kernel runs in it (its
``kernel_id``), or ``%%sandbox`` and the panel's run-in-sandbox made it for a kernel and named it
``notebook-`` and the kernel id's first 12 characters (magics.py, labextension/src/notebooksandbox.ts).
jupyter_server's session manager says which notebook holds that kernel now.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..models import SandboxModel

NOTEBOOK_PREFIX = "notebook-"
KERNEL_ID_CHARS = 12  # how much of a kernel id a notebook sandbox's name keeps

log = logging.getLogger(__name__)


async def kernel_paths(session_manager: Any) -> dict[str, str]:
    """Each session's kernel id -> the path of the document that holds it (none without sessions)."""
    if session_manager is None:  # a sandbox service behind JupyterHub runs no sessions
        return {}
    try:
        sessions = await session_manager.list_sessions()
    except Exception:  # a list without paths beats a failed list of sandboxes
        log.warning("jupyter-sandbox: could not list sessions for the notebooks' paths", exc_info=True)
        return {}
    return {s["kernel"]["id"]: s["path"] for s in sessions if s.get("kernel") and s.get("path")}


def notebook_path(model: SandboxModel, paths: Mapping[str, str]) -> str | None:
    """The path of the notebook whose kernel this sandbox goes with, if any session holds it."""
    if model.kernel_id:
        return paths.get(model.kernel_id)
    if model.name.startswith(NOTEBOOK_PREFIX):
        prefix = model.name[len(NOTEBOOK_PREFIX) :]
        if len(prefix) == KERNEL_ID_CHARS:
            return next((path for kernel_id, path in paths.items() if kernel_id.startswith(prefix)), None)
    return None
