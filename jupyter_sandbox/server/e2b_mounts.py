"""E2B's ``volumeMounts`` of a new sandbox as this server's spec (issue 23; e2b_volumes.py has the rest)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInput


def volume_mount_spec(mounts: Any, volume_path: str) -> dict[str, Any]:
    """The spec fields (volume) for E2B's ``volumeMounts``: [{"name", "path"}], at most one, at ``volume_path``."""
    if mounts in (None, []):
        return {}
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise InvalidInput("volumeMounts must be a list of {name, path} objects", field="volumeMounts")
    if len(mounts) > 1:
        raise InvalidInput("a sandbox here mounts one volume; volumeMounts names more", field="volumeMounts")
    name, path = mounts[0].get("name"), mounts[0].get("path")
    if not isinstance(name, str) or not name:
        raise InvalidInput("volumeMounts[0].name must be a volume's name", field="volumeMounts")
    if isinstance(path, str) and path.rstrip("/") != volume_path.rstrip("/"):
        raise InvalidInput(f"this server mounts a volume at {volume_path}, not at {path!r}", field="volumeMounts")
    return {"volume": name}
