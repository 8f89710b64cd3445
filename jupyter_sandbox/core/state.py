"""What a server must remember to take its sandboxes back after a crash: one small JSON file per
sandbox (its model, its E2B secret, each context's kernel id and key), in the server's private
slot folder (core/identity.py). Files are written whole (temp file, then rename), mode 0600,
never through a symlink."""

from __future__ import annotations

import json
import os
from typing import Any

from .identity import private_dir


class SandboxRecords:
    """The records of one server's sandboxes; ``folder`` is made private (0700) on first use."""

    def __init__(self, folder: str):
        self.folder = folder

    def _path(self, sandbox_id: str) -> str:
        if "/" in sandbox_id or sandbox_id.startswith("."):
            raise ValueError(f"not a sandbox id: {sandbox_id!r}")
        return os.path.join(self.folder, f"{sandbox_id}.json")

    def save(self, sandbox_id: str, record: dict[str, Any]) -> None:
        private_dir(self.folder)
        tmp = self._path(sandbox_id) + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self._path(sandbox_id))

    def load(self, sandbox_id: str) -> dict[str, Any] | None:
        try:
            fd = os.open(self._path(sandbox_id), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd) as f:
            try:
                record = json.load(f)
            except ValueError:
                return None
        return record if isinstance(record, dict) else None

    def forget(self, sandbox_id: str) -> None:
        try:
            os.unlink(self._path(sandbox_id))
        except FileNotFoundError:
            pass
