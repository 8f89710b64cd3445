"""API keys for E2B's SDKs (``X-API-KEY``): each belongs to one user, who is the owner of every
sandbox made or reached with it.

A key is one a user minted here, or any token the server's own authentication takes (its Jupyter
token; a Hub API token behind JupyterHub): server/e2b_plane.py hands those to it. Minted keys are kept
only as SHA-256 hashes, with a short prefix to tell them apart, in one 0600 JSON file under the
server's state folder; the key itself is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidInput, NotFound

KEY_PREFIX = "e2b_"  # the SDKs' own keys look like this; some tools check for it
SHOWN_CHARS = 10  # of a key, in its listing: the prefix and a few characters


@dataclass
class KeyInfo:
    """A minted key as its owner sees it listed (never the key itself)."""

    id: str
    prefix: str
    created: float
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The minted keys in ``path``."""

    def __init__(self, path: str):
        self.path = path
        self._records: dict[str, dict[str, Any]] = {}  # hash -> record
        self._version: tuple[int, int] | None = None  # (inode, mtime) of the file read: each save is a new inode

    def _load(self) -> dict[str, dict[str, Any]]:
        """The records, read again when the file changed (a CLI of the same user may have changed it)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._records, self._version = {}, None
            return self._records
        version = (info.st_ino, info.st_mtime_ns)
        if version != self._version:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            self._records = {h: r for h, r in data.items() if isinstance(r, dict) and isinstance(r.get("owner"), str)}
            self._version = version
        return self._records

    def _save(self, records: dict[str, dict[str, Any]]) -> None:
        folder = os.path.dirname(self.path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(records, f)
        os.replace(temporary, self.path)  # whole or not at all
        self._version = None  # read back on next use

    def owner_of(self, key: str) -> str | None:
        """The user a minted ``key`` belongs to; None for a key nobody minted (or one revoked)."""
        record = self._load().get(_hash(key))
        return record["owner"] if record else None

    def mint(self, owner: str, name: str = "") -> tuple[str, KeyInfo]:
        """A new key of ``owner``: (the key, shown only now; its listing)."""
        if len(name) > 100:
            raise InvalidInput("a key's name is at most 100 characters", field="name")
        key = KEY_PREFIX + secrets.token_hex(20)
        info = KeyInfo(id="key_" + secrets.token_hex(6), prefix=key[:SHOWN_CHARS], created=time.time(), name=name)
        records = dict(self._load())
        records[_hash(key)] = {"owner": owner, **info.to_dict()}
        self._save(records)
        return key, info

    def list(self, owner: str) -> list[KeyInfo]:
        return sorted(
            (
                KeyInfo(id=r["id"], prefix=r["prefix"], created=r["created"], name=r.get("name", ""))
                for r in self._load().values()
                if r["owner"] == owner
            ),
            key=lambda info: info.created,
        )

    def revoke(self, owner: str, key_id: str) -> None:
        """Forget one of ``owner``'s keys (NotFound for another user's, as for an unknown one)."""
        records = dict(self._load())
        found = [h for h, r in records.items() if r["owner"] == owner and r.get("id") == key_id]
        if not found:
            raise NotFound(f"you have no API key {key_id!r}")
        for digest in found:
            del records[digest]
        self._save(records)
