"""E2B's volumes API on this server's persistent volumes (issue 23), under E2B's lifecycle API
(``{base_url}sandbox/e2b/api``): POST/GET /volumes, GET/DELETE /volumes/{volumeID}, and a new
sandbox's ``volumeMounts``. What fits and what does not (docs/e2b.md):

- a volume is the caller's own (by API key or login), its volumeID this server's volume id;
- E2B's volume content API (files of a volume without a sandbox, with the volume's token) is not
  served: the token answered is empty, and a volume's files are reached from a sandbox that mounts it;
- a sandbox mounts one volume, at the server's volume path: ``volumeMounts`` naming another path,
  or more than one volume, is refused with a message saying so.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from tornado import web

from ..errors import InvalidInput
from ..models import VolumeModel
from .e2b_api import E2BApiHandler, e2b_api_path


def _json(volume: VolumeModel, token: bool = False) -> dict[str, Any]:
    data = {"volumeID": volume.id, "name": volume.name}
    return {**data, "token": ""} if token else data  # no volume content API here (its token is unused)


class VolumesHandler(E2BApiHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        self.write_json([_json(v) for v in await self.manager.volumes.list(self.owner)])

    @allow_unauthenticated
    async def post(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidInput("name (a string) is required", field="name")
        self.write_json(_json(await self.manager.volumes.create(self.owner, body["name"]), token=True), status=201)


class VolumeHandler(E2BApiHandler):
    @allow_unauthenticated
    async def get(self, volume_id: str) -> None:
        self.write_json(_json(await self.manager.volumes.get(self.owner, volume_id), token=True))

    @allow_unauthenticated
    async def delete(self, volume_id: str) -> None:
        await self.manager.volumes.remove(self.owner, volume_id)
        self.no_content()


# before e2b_api.ROUTES, whose last route answers every other path
ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    (e2b_api_path("volumes"), VolumesHandler),
    (e2b_api_path("volumes/{volume_id}"), VolumeHandler),
]
