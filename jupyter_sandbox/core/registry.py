"""The registry of one server's sandboxes: which exist and who owns them, finding one by id or
name for its owner, telling listeners what happens to them, and writing down the records a
restarted server takes them back from (core/state.py keeps the files).
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..errors import Conflict, NotFound
from ..models import SandboxModel, now
from .sandbox import Sandbox
from .state import SandboxRecords

# Gets the sandbox's owner and one dict per sandbox event (see server/event_schemas/sandbox/v1.yaml):
# the owner decides who may hear of it ("" for a pooled sandbox, which is nobody's yet). Must not block.
EventListener = Callable[[str, dict[str, Any]], None]
# Removed sandboxes remembered (the newest), so that their owner hears "it ended", not "unknown"
REMOVED_KEPT = 1024


class SandboxRegistry:
    """The sandboxes by id, their listeners, and their records (None: nothing is kept)."""

    def __init__(self) -> None:
        self.sandboxes: dict[str, Sandbox] = {}
        self.listeners: list[EventListener] = []
        self.records: SandboxRecords | None = None
        self.removed: OrderedDict[str, tuple[str, str]] = OrderedDict()  # id -> (owner, e2b secret)

    def __contains__(self, sandbox_id: str) -> bool:
        return sandbox_id in self.sandboxes

    def add(self, sandbox: Sandbox) -> None:
        self.sandboxes[sandbox.model.id] = sandbox

    def pop(self, sandbox: Sandbox) -> bool:
        """Take ``sandbox`` out; whether it was in."""
        return self.sandboxes.pop(sandbox.model.id, None) is not None

    def note_removed(self, sandbox: Sandbox) -> None:
        self.removed[sandbox.model.id] = (sandbox.model.owner, sandbox.e2b_secret)
        while len(self.removed) > REMOVED_KEPT:
            self.removed.popitem(last=False)

    def removed_lately(self, sandbox_id: str, *, owner: str = "", secret: str = "") -> bool:
        """Whether ``sandbox_id`` was removed here lately, asked by its owner or by the holder of its
        secret (anyone else learns nothing of it)."""
        removed_owner, removed_secret = self.removed.get(sandbox_id, ("", ""))
        if secret:
            return bool(removed_secret) and hmac.compare_digest(removed_secret.encode(), secret.encode())
        return bool(owner) and owner == removed_owner

    def holds(self, sandbox: Sandbox) -> bool:
        """Whether this very sandbox is registered (not removed, nor replaced under its id)."""
        return self.sandboxes.get(sandbox.model.id) is sandbox

    def all(self) -> list[Sandbox]:
        return list(self.sandboxes.values())

    def owned_by(self, owner: str) -> list[Sandbox]:
        return [s for s in self.sandboxes.values() if s.model.owner == owner]

    def get(self, owner: str, ref: str) -> Sandbox:
        """A sandbox by id or name (``ref``); another owner's sandbox is simply not found."""
        sandbox = self.sandboxes.get(ref)
        if sandbox is None:
            sandbox = next((s for s in self.owned_by(owner) if s.model.name == ref), None)
        if sandbox is None or sandbox.model.owner != owner:
            raise NotFound(f"no sandbox {ref!r}")
        return sandbox

    def use(self, owner: str, ref: str) -> Sandbox:
        """``get`` for an operation that counts as activity (reading the model or stats does not)."""
        sandbox = self.get(owner, ref)
        if sandbox.model.paused:  # its container is stopped (core/pausing.py)
            raise Conflict(f"sandbox {sandbox.model.name!r} is paused; resume it first (POST .../resume)")
        sandbox.model.last_activity = now()
        return sandbox

    def models(self, owner: str | None = None) -> list[SandboxModel]:
        """The sandboxes' models (of one owner, or all), oldest first."""
        return sorted(
            (s.model for s in self.sandboxes.values() if owner is None or s.model.owner == owner),
            key=lambda m: m.created,
        )

    def emit(self, action: str, sandbox: Sandbox) -> None:
        model = sandbox.model
        data = {
            "action": action,
            "sandbox_id": model.id,
            "name": model.name,
            "status": model.status,
            "executing": sandbox.executing,
        }
        for listener in list(self.listeners):
            listener(model.owner, data)

    def save(self, sandbox: Sandbox) -> None:
        """Write down what a restarted server needs to take this sandbox back (owned ones only)."""
        if self.records is None or not sandbox.model.owner or sandbox.model.id not in self.sandboxes:
            return
        data = sandbox.model.to_dict()
        data.pop("e2b_url", None)
        self.records.save(
            sandbox.model.id,
            {
                "model": data,
                "e2b_secret": sandbox.e2b_secret,
                "default_context": sandbox.default_context,
                # "key": the kernel's HMAC key, under the name records written before carry it
                "contexts": [
                    {"model": c.model.to_dict(), "kernel_id": c.kernel_id, "key": c.hmac_key}
                    for c in sandbox.contexts.values()
                ],
            },
        )

    def forget(self, sandbox_id: str) -> None:
        if self.records:
            self.records.forget(sandbox_id)
