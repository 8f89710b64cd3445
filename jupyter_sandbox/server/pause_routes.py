"""REST routes for pause and resume, snapshots and fork (issue 23): thin, each verb parses its
request (models.py) and calls the manager's ``pausing`` (core/pausing.py) for the owner.
Another user's sandbox or snapshot is not found (404), as everywhere.
"""

from __future__ import annotations

from jupyter_server.utils import url_path_join
from tornado import web

from ..models import ForkRequest, SnapshotRequest
from .handlers import SandboxAPIHandler, api_path, authorized_to


class PauseHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        self.write_json(self.model_dict(await self.manager.pausing.pause(self.owner, id_or_name)))


class ResumeHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        self.write_json(self.model_dict(await self.manager.pausing.resume(self.owner, id_or_name)))


class ForkHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        request = ForkRequest.parse(self.json_body())
        model = await self.manager.pausing.fork(self.owner, id_or_name, request.name)
        self.set_header("Location", url_path_join(self.base_url, api_path("sandboxes", model.id)))
        self.write_json(self.model_dict(model), status=201)


class SandboxSnapshotsHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("write")
    async def post(self, id_or_name: str) -> None:
        request = SnapshotRequest.parse(self.json_body())
        snapshot = await self.manager.pausing.snapshot(self.owner, id_or_name, request.name)
        self.set_header("Location", url_path_join(self.base_url, api_path("snapshots", snapshot.name)))
        self.write_json(snapshot.to_dict(), status=201)


class SnapshotsHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("read")
    async def get(self) -> None:
        self.write_json([s.to_dict() for s in self.manager.pausing.list_snapshots(self.owner)])


class SnapshotHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized_to("read")
    async def get(self, name: str) -> None:
        self.write_json(self.manager.pausing.archives.get(self.owner, name).to_dict())

    @web.authenticated
    @authorized_to("write")
    async def delete(self, name: str) -> None:
        self.manager.pausing.delete_snapshot(self.owner, name)
        self.no_content()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("sandboxes/{id_or_name}/pause"), PauseHandler),
    (api_path("sandboxes/{id_or_name}/resume"), ResumeHandler),
    (api_path("sandboxes/{id_or_name}/fork"), ForkHandler),
    (api_path("sandboxes/{id_or_name}/snapshots"), SandboxSnapshotsHandler),
    (api_path("snapshots"), SnapshotsHandler),
    (api_path("snapshots/{name}"), SnapshotHandler),
]
