"""The project's REST routes for persistent volumes (issue 23): an owner's volumes with their usage.

GET/POST sandbox/api/volumes, GET/DELETE sandbox/api/volumes/{name}. Thin: each verb parses its
request (models.py), calls the manager's ``volumes`` (core/volumes.py) for the owner, writes JSON.
Another user's volume is unknown (404), as another user's sandbox is.
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from ..models import VolumeRequest
from .handlers import SandboxAPIHandler, api_path


class VolumesHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json([v.to_dict() for v in await self.manager.volumes.list(self.owner)])

    @web.authenticated
    @authorized
    async def post(self) -> None:
        request = VolumeRequest.parse(self.json_body())
        volume = await self.manager.volumes.create(self.owner, request.name, request.size)
        self.set_header("Location", url_path_join(self.base_url, api_path("volumes", volume.name)))
        self.write_json(volume.to_dict(), status=201)


class VolumeHandler(SandboxAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.write_json((await self.manager.volumes.get(self.owner, name)).to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.manager.volumes.remove(self.owner, name)
        self.no_content()


ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (api_path("volumes"), VolumesHandler),
    (api_path("volumes/{name}"), VolumeHandler),
]
