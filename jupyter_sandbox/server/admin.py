"""The admin view: every user's sandboxes, for holders of the admin right (``handlers.is_admin``;
in the Hub service, the scope ``custom:sandbox:admin``). Everyone else gets 403, a plain Jupyter
server's users included."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound, SandboxError
from ..models import SandboxModel
from .handlers import SandboxAPIHandler, api_path, is_admin


class AdminHandler(SandboxAPIHandler):
    def require_admin(self) -> None:
        if not is_admin(self):
            self.log.warning("jupyter-sandbox: %s is not an admin: %s refused", self.owner, self.request.path)
            raise web.HTTPError(403, "only sandbox admins may see other users' sandboxes")

    async def row(self, model: SandboxModel) -> dict[str, Any]:
        """What the admin view shows of one sandbox: who, what, since when, and what it uses now."""
        stats: dict[str, Any] = {}
        if model.status == "running":
            try:
                stats = await self.manager.stats(model.owner, model.id)
            except SandboxError as e:  # gone meanwhile, or the engine did not answer: shown without figures
                self.log.info("jupyter-sandbox: no stats for sandbox %s: %s", model.id, e)
        return {
            "id": model.id,
            "name": model.name,
            "owner": model.owner,
            "status": model.status,
            "kind": model.kind,
            "created": model.created,
            "age": max(0.0, time.time() - model.created),
            "last_activity": model.last_activity,
            "memory_limit": model.spec.memory,
            "cpus": model.spec.cpus,
            "memory_used": stats.get("memory_used"),
            "cpu_percent": stats.get("cpu_percent"),
        }


class AdminSandboxesHandler(AdminHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_admin()
        models = sorted(self.manager.list(), key=lambda m: (m.owner, m.created))
        self.write_json(list(await asyncio.gather(*(self.row(m) for m in models))))


class AdminSandboxHandler(AdminHandler):
    @web.authenticated
    @authorized
    async def delete(self, sandbox_id: str) -> None:
        self.require_admin()
        model = next((m for m in self.manager.list() if m.id == sandbox_id), None)
        if model is None:
            raise NotFound(f"no sandbox {sandbox_id!r}")
        self.log.info("jupyter-sandbox: admin %s stops sandbox %s of %s", self.owner, model.id, model.owner)
        await self.manager.remove(model.owner, model.id)
        self.no_content()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("admin/sandboxes"), AdminSandboxesHandler),
    (api_path("admin/sandboxes/{sandbox_id}"), AdminSandboxHandler),
]
