"""The test API server's object store: objects by (resource, namespace, name), one
resourceVersion counter for all of them (as etcd's revision), and the event history that
``watch`` streams replay from a resourceVersion. Used only on the server's event loop."""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import datetime, timezone
from typing import Any

Key = tuple[str, str, str]  # resource, namespace, name
HISTORY = 5000  # events kept for watches that start at an older resourceVersion


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.revision = 1
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # revision, resource, type, object
        self.changed = asyncio.Condition()

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((resource, namespace, name))

    def find(self, resource: str, namespace: str = "") -> list[dict[str, Any]]:
        return [
            obj
            for (res, ns, _), obj in sorted(self.objects.items())
            if res == resource and (not namespace or ns == namespace)
        ]

    async def add(self, resource: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.update(namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        self.objects[(resource, namespace, meta["name"])] = obj
        await self._record(resource, "ADDED", obj)
        return obj

    async def modified(self, resource: str, obj: dict[str, Any]) -> None:
        await self._record(resource, "MODIFIED", obj)

    async def remove(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((resource, namespace, name), None)
        if obj is not None:
            await self._record(resource, "DELETED", obj)

    async def _record(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self.events.append((self.revision, resource, kind, copy.deepcopy(obj)))
        del self.events[:-HISTORY]
        async with self.changed:
            self.changed.notify_all()

    def events_since(self, resource: str, revision: int) -> list[tuple[int, str, dict[str, Any]]]:
        return [(rev, kind, obj) for rev, res, kind, obj in self.events if res == resource and rev > revision]

    def oldest(self) -> int:
        return self.events[0][0] if self.events else self.revision
